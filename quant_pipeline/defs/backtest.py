"""Backtest assets: daily equity per strategy, trades, quarterly summary, metrics, comparison."""

import dagster as dg
import polars as pl

from quant_pipeline.core import backtest, metrics, plots
from quant_pipeline.core.blend import ATTRIBUTION_SCHEMA, BlendInputError, blend_returns
from quant_pipeline.core.evaluation import metrics_for_strategies
from quant_pipeline.core.research_plots import equity_curves_png
from quant_pipeline.defs.metadata import markdown_table, table_metadata
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.defs.strategies import selected_strategies

GROUP = "backtest"
KINDS = {"duckdb", "polars"}
PRICE_COLUMNS = ["ticker", "date", "close", "adj_close", "daily_return"]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["backtest", "daily"],
            deps=[
                ["portfolio", "target_weights"],
                ["curated", "prices"],
                ["curated", "membership"],
            ],
            description="Daily portfolio and benchmark returns, equity, drawdown, turnover, costs.",
            group_name=GROUP,
            kinds=KINDS,
        ),
        dg.AssetSpec(
            ["backtest", "trades"],
            deps=[["portfolio", "target_weights"]],
            description="Every position: entry and exit dates and prices, return, sector.",
            group_name=GROUP,
            kinds=KINDS,
        ),
        dg.AssetSpec(
            ["backtest", "quarterly"],
            deps=[["portfolio", "target_weights"]],
            description="Quarterly portfolio, benchmark and excess returns per strategy.",
            group_name=GROUP,
            kinds=KINDS,
        ),
        dg.AssetSpec(
            ["backtest", "blend_attribution"],
            deps=[["portfolio", "target_weights"]],
            description="Each blend's sleeves: weight, sleeve return, contribution to the blend.",
            group_name=GROUP,
            kinds=KINDS,
        ),
    ],
    pool="warehouse",
)
def backtest_results(
    context: dg.AssetExecutionContext, market: MarketDataResource, warehouse: WarehouseResource
):
    """Backtest every strategy on curated prices (blends from their sleeves' daily returns)."""
    wh = warehouse.get()
    specs = selected_strategies(market)
    weights = wh.read_table("portfolio.target_weights")
    prices = wh.read_table("curated.prices", columns=PRICE_COLUMNS)
    membership = wh.read_table("curated.membership")
    benchmark = backtest.equal_weight_benchmark(
        prices, membership=membership if membership.height else None
    )
    daily, trades, quarterly, charts, skipped = [], [], [], {}, {}
    for name, spec in specs.items():
        if spec.kind == "blend":
            continue
        w = weights.filter(pl.col("strategy") == name)
        if w.filter(pl.col("weight") > 0).is_empty():
            skipped[name] = "no target weights (no eligible names or no signal)"
            continue
        result = backtest.run_backtest(
            w, prices, cost_bps=spec.costs.bps, benchmark=benchmark, strategy=name
        )
        daily.append(result.daily)
        trades.append(result.trades)
    attributions = [pl.DataFrame(schema=ATTRIBUTION_SCHEMA)]
    sleeves = pl.concat(daily, how="vertical_relaxed") if daily else None
    for name, spec in specs.items():
        if spec.blend is None:
            continue
        try:
            if sleeves is None:
                raise BlendInputError(f"{name}: none of its sleeves has a backtest")
            d, a = blend_returns(
                sleeves, dict(spec.blend.sleeves), spec.blend.rebalance, benchmark, name
            )
        except BlendInputError as exc:
            skipped[name] = str(exc)
            continue
        daily.append(d)
        attributions.append(a)
    for name, reason in skipped.items():
        context.log.warning(f"strategy {name!r} left out of the backtest: {reason}")
    if not daily:
        raise dg.Failure(f"no strategy could be backtested: {skipped}")
    for d in daily:
        name = d["strategy"][0]
        quarterly.append(backtest.quarterly_summary(d))
        charts[name] = plots.md_image(
            plots.equity_chart_png(d, f"{name}: equity vs equal-weight benchmark"),
            f"{name} equity curve",
        )
    attribution = pl.concat(attributions, how="vertical_relaxed")
    wh.replace_table("backtest.blend_attribution", attribution)
    daily_all = pl.concat(daily, how="vertical_relaxed")
    trades_all = pl.concat(trades, how="vertical_relaxed")
    quarterly_all = pl.concat(quarterly, how="vertical_relaxed")
    wh.replace_table("backtest.daily", daily_all)
    wh.replace_table("backtest.trades", trades_all)
    wh.replace_table("backtest.quarterly", quarterly_all)
    final = daily_all.group_by("strategy").agg(pl.col("equity").last(), pl.col("date").last())
    yield dg.MaterializeResult(
        asset_key=["backtest", "daily"],
        metadata={
            **table_metadata("backtest.daily", daily_all),
            "final_equity": dg.MetadataValue.md(
                markdown_table(final.sort("strategy"), max_rows=50)
            ),
            "skipped_strategies": dg.MetadataValue.json(skipped),
            **{f"equity_curve_{name}": dg.MetadataValue.md(md) for name, md in charts.items()},
        },
    )
    yield dg.MaterializeResult(
        asset_key=["backtest", "trades"], metadata=table_metadata("backtest.trades", trades_all)
    )
    yield dg.MaterializeResult(
        asset_key=["backtest", "quarterly"],
        metadata=table_metadata("backtest.quarterly", quarterly_all),
    )
    yield dg.MaterializeResult(
        asset_key=["backtest", "blend_attribution"],
        metadata=table_metadata(
            "backtest.blend_attribution",
            attribution,
            attribution=dg.MetadataValue.md(markdown_table(attribution, max_rows=40)),
        ),
    )


@dg.asset(
    key=["backtest", "metrics"],
    deps=[["backtest", "daily"], ["backtest", "trades"], ["backtest", "blend_attribution"]],
    group_name=GROUP,
    kinds=KINDS,
    pool="warehouse",
)
def backtest_metrics(
    market: MarketDataResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Performance statistics per strategy and for the benchmark (long: strategy, metric, value)."""
    wh = warehouse.get()
    daily = wh.read_table("backtest.daily")
    trades = wh.read_table("backtest.trades")
    long = metrics_for_strategies(daily, trades)
    wh.replace_table("backtest.metrics", long)
    comparison = metrics.comparison_table(long)
    wh.replace_table("backtest.comparison", comparison)
    return dg.MaterializeResult(
        metadata={
            **table_metadata("backtest.metrics", long),
            "comparison": dg.MetadataValue.md(markdown_table(comparison, max_rows=50)),
            "equity_curves": dg.MetadataValue.md(
                plots.md_image(equity_curves_png(daily), "every strategy vs the benchmark")
            ),
        }
    )


backtest_assets = [backtest_results, backtest_metrics]

"""Backtest assets: daily equity per strategy, trades, quarterly summary, metrics, comparison."""

import dagster as dg
import polars as pl

from quant_pipeline.core import backtest, metrics, plots
from quant_pipeline.core.evaluation import metrics_for_strategies
from quant_pipeline.defs.integrity import write_bias_labels
from quant_pipeline.defs.metadata import markdown_table, table_metadata
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.defs.strategies import selected_strategies

GROUP = "backtest"
KINDS = {"duckdb", "polars"}
PRICE_COLUMNS = ["ticker", "date", "close", "adj_close", "daily_return"]


class BacktestConfig(dg.Config):
    """Run config of the backtest. ``delisting_return`` (e.g. -0.3) is applied to the last price
    of a holding whose prices stop; None closes it at the last price. See README "Bias labels"."""

    delisting_return: float | None = None


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
            ["backtest", "labels"],
            deps=[["factors", "values"], ["curated", "fundamentals"]],
            description="How each backtest was made: universe, survivorship, timing, vintage.",
            group_name=GROUP,
            kinds=KINDS,
        ),
    ],
    pool="warehouse",
)
def backtest_results(
    config: BacktestConfig, market: MarketDataResource, warehouse: WarehouseResource
):
    """Run every strategy's backtest on the curated prices and write daily, trades, quarterly."""
    wh = warehouse.get()
    specs = selected_strategies(market)
    weights = wh.read_table("portfolio.target_weights")
    prices = wh.read_table("curated.prices", columns=PRICE_COLUMNS)
    membership = wh.read_table("curated.membership")
    benchmark = backtest.equal_weight_benchmark(
        prices, membership=membership if membership.height else None
    )
    daily, trades, quarterly, charts = [], [], [], {}
    for name, spec in specs.items():
        w = weights.filter(pl.col("strategy") == name)
        if w.is_empty():
            raise dg.Failure(f"strategy {name!r} has no target weights: nothing to backtest")
        result = backtest.run_backtest(
            w,
            prices,
            cost_bps=spec.costs.bps,
            benchmark=benchmark,
            delisting_return=config.delisting_return,
            strategy=name,
        )
        daily.append(result.daily)
        trades.append(result.trades)
        quarterly.append(backtest.quarterly_summary(result.daily))
        charts[name] = plots.md_image(
            plots.equity_chart_png(result.daily, f"{name}: equity vs equal-weight benchmark"),
            f"{name} equity curve",
        )
    daily_all = pl.concat(daily, how="vertical_relaxed")
    trades_all = pl.concat(trades, how="vertical_relaxed")
    quarterly_all = pl.concat(quarterly, how="vertical_relaxed")
    wh.replace_table("backtest.daily", daily_all)
    wh.replace_table("backtest.trades", trades_all)
    wh.replace_table("backtest.quarterly", quarterly_all)
    labels = write_bias_labels(
        wh, market, specs, prices, membership, delisting_return=config.delisting_return
    )
    final = daily_all.group_by("strategy").agg(pl.col("equity").last(), pl.col("date").last())
    yield dg.MaterializeResult(
        asset_key=["backtest", "daily"],
        metadata={
            **table_metadata("backtest.daily", daily_all),
            "final_equity": dg.MetadataValue.md(markdown_table(final.sort("strategy"))),
            **{f"equity_curve_{name}": dg.MetadataValue.md(md) for name, md in charts.items()},
            "bias_labels": dg.MetadataValue.md(markdown_table(labels, max_rows=100)),
        },
    )
    yield dg.MaterializeResult(
        asset_key=["backtest", "labels"],
        metadata={
            **table_metadata("backtest.labels", labels),
            "labels": dg.MetadataValue.md(markdown_table(labels, max_rows=100)),
        },
    )
    yield dg.MaterializeResult(
        asset_key=["backtest", "trades"], metadata=table_metadata("backtest.trades", trades_all)
    )
    yield dg.MaterializeResult(
        asset_key=["backtest", "quarterly"],
        metadata=table_metadata("backtest.quarterly", quarterly_all),
    )


@dg.asset(
    key=["backtest", "metrics"],
    deps=[["backtest", "daily"], ["backtest", "trades"]],
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
        }
    )


backtest_assets = [backtest_results, backtest_metrics]

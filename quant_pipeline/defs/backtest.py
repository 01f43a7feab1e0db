"""Backtest assets: the share-based simulation per strategy (daily, trades, fills, positions,
unfilled targets, quarterly summary), metrics and the comparison."""

import dagster as dg
import polars as pl

from quant_pipeline.core.backtest import reference_engine as backtest
from quant_pipeline.core.backtest.benchmark_returns import benchmark_series
from quant_pipeline.core.backtest.blend import ATTRIBUTION_SCHEMA, BlendInputError, blend_returns
from quant_pipeline.core.backtest.comparison import (
    comparison_by_window,
    comparison_common_window,
    metrics_for_strategies,
    starting_capital,
)
from quant_pipeline.core.backtest.lean_statistics import lean_statistics
from quant_pipeline.core.backtest.share_simulation import simulate, unfilled_targets
from quant_pipeline.core.data.calendar import TRADING_DAYS_PER_YEAR
from quant_pipeline.core.data.schema import CLOSE_PRICE_COLUMNS
from quant_pipeline.core.reporting import backtest_charts as plots
from quant_pipeline.core.reporting.research_charts import equity_curves_png
from quant_pipeline.defs.integrity import write_bias_labels
from quant_pipeline.defs.metadata import markdown_table, table_metadata
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.defs.strategies import selected_strategies
from quant_pipeline.defs.trading import BacktestConfig, model_settings, trading_model
from quant_pipeline.settings import from_env

GROUP = "backtest"
KINDS = {"duckdb", "polars"}
SIMULATION_TABLES = {
    "fills": "Every simulated order: side, shares, price, execution price, commission, slippage.",
    "positions": "Shares, value and weight held after each rebalance, per strategy and ticker.",
    "unfilled_targets": "Targets not (fully) bought: no recent price, price above target, no cash.",
    "settings": "The trading model and benchmark each strategy's backtest used.",
}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["backtest", "daily"],
            deps=[
                ["portfolio", "target_weights"],
                ["curated", "prices"],
                ["backtest", "benchmarks"],
            ],
            description="Daily portfolio and benchmark returns, equity, drawdown, turnover, costs.",
            group_name=GROUP,
            kinds=KINDS,
        ),
        dg.AssetSpec(
            ["backtest", "trades"],
            deps=[["portfolio", "target_weights"]],
            description="Every position: entry and exit dates and prices, return, fees, sector.",
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
        *[
            dg.AssetSpec(
                ["backtest", table],
                deps=[["portfolio", "target_weights"]],
                description=description,
                group_name=GROUP,
                kinds=KINDS,
            )
            for table, description in SIMULATION_TABLES.items()
        ],
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
    context: dg.AssetExecutionContext,
    config: BacktestConfig,
    market: MarketDataResource,
    warehouse: WarehouseResource,
):
    """Trade every strategy's target weights with a cash account; blends from their sleeves."""
    wh = warehouse.get()
    specs = selected_strategies(market)
    weights = wh.read_table("portfolio.target_weights")
    prices = wh.read_table("curated.prices", columns=CLOSE_PRICE_COLUMNS)
    bench_table = wh.read_table("backtest.benchmarks")
    primary = bench_table.filter(pl.col("is_primary"))["benchmark"].unique().to_list()
    if len(primary) != 1:
        raise dg.Failure(f"backtest.benchmarks must mark one primary benchmark, found {primary}")
    benchmark = benchmark_series(bench_table, primary[0])
    outputs: dict[str, list[pl.DataFrame]] = {t: [] for t in ("daily", "trades", "quarterly")}
    outputs.update({t: [] for t in SIMULATION_TABLES})
    models: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for name, spec in specs.items():
        if spec.kind == "blend":
            continue
        w = weights.filter(pl.col("strategy") == name)
        if w.filter(pl.col("weight") > 0).is_empty():
            skipped[name] = "no target weights (no eligible names or no signal)"
            continue
        model = trading_model(config, spec)
        models[name] = model.describe()
        result = simulate(
            w,
            prices,
            model,
            benchmark=benchmark,
            delisting_return=config.delisting_return,
            strategy=name,
        )
        outputs["daily"].append(result.daily)
        outputs["trades"].append(result.trades)
        outputs["fills"].append(result.fills)
        outputs["positions"].append(result.positions)
        outputs["unfilled_targets"].append(unfilled_targets(result))
        outputs["settings"].append(
            model_settings(model).select(
                pl.lit(name).alias("strategy"),
                pl.lit(primary[0]).alias("benchmark"),
                pl.all(),
                pl.lit(models[name]).alias("description"),
            )
        )
    attributions = [pl.DataFrame(schema=ATTRIBUTION_SCHEMA)]
    sleeves = pl.concat(outputs["daily"], how="vertical_relaxed") if outputs["daily"] else None
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
        outputs["daily"].append(blend_in_currency(d, sleeves, dict(spec.blend.sleeves)))
        attributions.append(a)
        models[name] = "blend of " + ", ".join(f"{w:.0%} {s}" for s, w in spec.blend.sleeves)
    for name, reason in skipped.items():
        context.log.warning(f"strategy {name!r} left out of the backtest: {reason}")
    if not outputs["daily"]:
        raise dg.Failure(f"no strategy could be backtested: {skipped}")
    charts = {}
    for d in outputs["daily"]:
        name = d["strategy"][0]
        outputs["quarterly"].append(backtest.quarterly_summary(d))
        charts[name] = plots.md_image(
            plots.equity_chart_png(d, f"{name}: equity vs {primary[0]} benchmark"),
            f"{name} equity curve",
        )
    frames = {t: pl.concat(parts, how="diagonal_relaxed") for t, parts in outputs.items() if parts}
    frames["blend_attribution"] = pl.concat(attributions, how="vertical_relaxed")
    for table, frame in frames.items():
        wh.replace_table(f"backtest.{table}", frame)
    daily_all = frames["daily"]
    final = daily_all.group_by("strategy").agg(
        pl.col("equity").last(),
        pl.col("portfolio_value").last(),
        pl.col("fees").sum().alias("total_fees"),
        pl.col("slippage").sum().alias("total_slippage"),
        pl.col("date").last(),
    )
    labels = write_bias_labels(
        wh,
        market,
        {n: s for n, s in specs.items() if n in models},
        prices,
        wh.read_table("curated.membership"),
        delisting_return=config.delisting_return,
        trading_models=models,
    )
    yield dg.MaterializeResult(
        asset_key=["backtest", "daily"],
        metadata={
            **table_metadata("backtest.daily", daily_all),
            "benchmark": primary[0],
            "trading_model": dg.MetadataValue.md(
                "\n".join(f"- **{n}**: {text}" for n, text in models.items())
            ),
            "final_equity": dg.MetadataValue.md(
                markdown_table(final.sort("strategy"), max_rows=50)
            ),
            "skipped_strategies": dg.MetadataValue.json(skipped),
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
    for table in ("trades", "quarterly", *SIMULATION_TABLES, "blend_attribution"):
        frame = frames.get(table, pl.DataFrame())
        extra = {}
        if table == "blend_attribution":
            extra["attribution"] = dg.MetadataValue.md(markdown_table(frame, max_rows=40))
        yield dg.MaterializeResult(
            asset_key=["backtest", table],
            metadata={**table_metadata(f"backtest.{table}", frame), **extra},
        )


def blend_in_currency(
    daily: pl.DataFrame, sleeves: pl.DataFrame, weights: dict[str, float]
) -> pl.DataFrame:
    """A blend's daily rows with ``portfolio_value`` in currency: its equity times the capital
    its sleeves started with (weighted). Cash, fees and slippage stay with the sleeves (null)."""
    capital = sum(
        w * (starting_capital(sleeves.filter(pl.col("strategy") == s)) or 1.0)
        for s, w in weights.items()
    )
    return daily.with_columns((pl.col("equity") * capital).alias("portfolio_value"))


class MetricsConfig(dg.Config):
    """The annual risk-free rate of Sharpe, Sortino, alpha and LEAN's statistics (e.g. 0.02);
    None reads QUANT_PIPELINE_RISK_FREE_RATE (default 0)."""

    risk_free_rate: float | None = None


def metric_settings(risk_free_rate: float) -> pl.DataFrame:
    """``backtest.metric_settings``: the settings every metric table of the run used."""
    return pl.DataFrame(
        {
            "setting": ["risk_free_rate", "periods_per_year"],
            "value": [risk_free_rate, float(TRADING_DAYS_PER_YEAR)],
        }
    )


@dg.asset(
    key=["backtest", "metrics"],
    deps=[["backtest", "daily"], ["backtest", "trades"], ["curated", "prices"]],
    group_name=GROUP,
    kinds=KINDS,
    pool="warehouse",
)
def backtest_metrics(config: MetricsConfig, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Statistics per strategy and benchmark; comparisons over own and over one common window."""
    wh = warehouse.get()
    rf = config.risk_free_rate if config.risk_free_rate is not None else from_env().risk_free_rate
    daily = wh.read_table("backtest.daily")
    trades = wh.read_table("backtest.trades")
    long = metrics_for_strategies(daily, trades, rf)
    wh.replace_table("backtest.metrics", long)
    comparison = comparison_by_window(daily, long)
    wh.replace_table("backtest.comparison", comparison)
    # backtest.daily runs every strategy to the last market date, so a common window exists
    # unless a strategy starts on that date (then metrics_for_strategies has already failed,
    # naming the windows)
    common = comparison_common_window(daily, rf)
    wh.replace_table("backtest.comparison_common_window", common)
    fills = wh.read_table("backtest.fills")
    bars = wh.read_table("curated.prices", columns=["ticker", "date", "close", "volume"])
    lean = lean_statistics(daily, fills, bars, rf)
    wh.replace_table("backtest.lean_statistics", lean)
    wh.replace_table("backtest.metric_settings", metric_settings(rf))
    lean_wide = lean.pivot(on="strategy", index="statistic", values="display")
    return dg.MaterializeResult(
        metadata={
            **table_metadata("backtest.metrics", long),
            "risk_free_rate": rf,
            "comparison": dg.MetadataValue.md(markdown_table(comparison, max_rows=50)),
            "comparison_common_window": dg.MetadataValue.md(markdown_table(common, max_rows=50)),
            "lean_statistics": dg.MetadataValue.md(markdown_table(lean_wide, max_rows=50)),
            "equity_curves": dg.MetadataValue.md(
                plots.md_image(equity_curves_png(daily), "every strategy vs the benchmark")
            ),
        }
    )


backtest_assets = [backtest_results, backtest_metrics]

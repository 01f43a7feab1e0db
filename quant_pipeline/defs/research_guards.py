"""Research assets that guard against fooling yourself: multiple testing, sweeps, walk-forward,
exposures and returns-based attribution."""

import time

import dagster as dg
import polars as pl

from quant_pipeline.app.parallel import process_map
from quant_pipeline.app.recommendation import data_version
from quant_pipeline.config.sweeps import load_sweeps
from quant_pipeline.core.backtest.benchmark_returns import benchmark_series
from quant_pipeline.core.data.dataset_version import fingerprints
from quant_pipeline.core.reporting.backtest_charts import md_image
from quant_pipeline.core.reporting.overfitting_charts import (
    heatmap_png,
    pbo_logits_png,
    walk_forward_png,
)
from quant_pipeline.core.research.overfitting import multiple_testing_table
from quant_pipeline.core.research.sweeps import (
    SweepResult,
    SweepSpec,
    run_sweep,
)
from quant_pipeline.core.research.walk_forward import walk_forward
from quant_pipeline.defs.metadata import markdown_table, table_metadata
from quant_pipeline.defs.research_pages import DAILY_FINGERPRINT, WEIGHTS_FINGERPRINT
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.defs.strategies import (
    is_restricted,
    owned_strategies,
    runnable_strategies,
    write_owned,
)
from quant_pipeline.defs.tables import reads, table_spec
from quant_pipeline.defs.trading import BacktestConfig, trading_model
from quant_pipeline.settings import from_env

GROUP = "research_guards"  # its own group: the weekly downstream rebuild leaves it out
KINDS = {"duckdb", "polars"}
STATED_SHARPE = 1.0  # the annual Sharpe LEAN's PSR is measured against
TESTING_READS = reads("backtest.daily")
SWEEP_READS = reads(
    "factors.values", "factors.rebalance_dates", "curated.prices", "backtest.benchmarks"
)
WALK_FORWARD_READS = reads("research.sweep", "research.sweep_daily")
EXPOSURE_READS = reads(
    "portfolio.target_weights", "factors.values", "curated.prices", "backtest.benchmarks"
)
COVARIANCE_READS = reads("portfolio.target_weights", "curated.prices")
ATTRIBUTION_READS = reads(
    "backtest.daily", "factors.values", "curated.prices", "backtest.metric_settings"
)


def owned_sweeps(market: MarketDataResource) -> list[str]:
    """The sweeps a run owns (research.sweep* and research.walk_forward* rows, keyed by
    ``sweep``): those of the strategies it owns (docs/design.md "Who writes which rows")."""
    owned = set(owned_strategies(market))
    return sorted(name for name, sweep in load_sweeps().items() if sweep.strategy in owned)


def _summary_md(summary: dict) -> str:
    return markdown_table(pl.DataFrame([summary]), max_rows=1)


@dg.asset(
    key=["research", "multiple_testing"],
    deps=TESTING_READS.deps,
    group_name=GROUP,
    kinds=KINDS,
    pool="warehouse",
)
def research_multiple_testing(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Every strategy's PSR vs 0, the benchmark and 1.0, its DSR given all strategies, and PBO."""
    read = TESTING_READS.reader(warehouse.read_only())
    daily = read(
        "backtest.daily", columns=["strategy", "date", "portfolio_return", "benchmark_return"]
    )
    table, summary, pbo = multiple_testing_table(daily, "strategy", STATED_SHARPE)
    table = table.with_columns(
        n_trials=pl.lit(summary["n_trials"]),
        pbo=pl.lit(summary["pbo"], pl.Float64),
        benchmark_sharpe=pl.lit(summary["benchmark_sharpe"]),
        stated_sharpe=pl.lit(STATED_SHARPE),
    )
    # Whole, from the whole backtest.daily (each strategy's rows as the run owning it left them):
    # the DSR and PBO are over every strategy, so a restricted run's change moves them all.
    warehouse.get().replace_table("research.multiple_testing", table)
    extra = {"summary": dg.MetadataValue.md(_summary_md(summary))}
    if pbo is not None:
        png = pbo_logits_png(pbo.logits, pbo.pbo, "CSCV logits over the shipped strategies")
        extra["pbo_chart"] = dg.MetadataValue.md(md_image(png, "PBO logits"))
    return dg.MaterializeResult(
        metadata=table_metadata("research.multiple_testing", table, **extra)
    )


def _prices_and_benchmark(read) -> tuple[pl.DataFrame, pl.DataFrame]:
    """curated.prices (ticker, date, close, adj_close) and the primary benchmark's returns."""
    prices = read("curated.prices", columns=["ticker", "date", "close", "adj_close"])
    bench_table = read("backtest.benchmarks")
    primary = bench_table.filter(pl.col("is_primary"))["benchmark"].unique().to_list()
    if len(primary) != 1:
        raise dg.Failure(f"backtest.benchmarks must mark one primary benchmark, found {primary}")
    return prices, benchmark_series(bench_table, primary[0])


def _sweep_inputs(read):
    """factors.values, the rebalance dates per frequency, prices and the primary benchmark."""
    values = read("factors.values")
    sched = read("factors.rebalance_dates")
    schedules = {
        f: sched.filter(pl.col("frequency") == f)["rebalance_date"].sort().to_list()
        for f in sched["frequency"].unique()
    }
    return values, schedules, *_prices_and_benchmark(read)


def _sweep_metadata(sweep: SweepSpec, result: SweepResult, seconds: float) -> dict:
    x, y, metric = sweep.heatmap
    title = f"{sweep.name}: mean {metric} by {x} and {y}"
    meta = {
        f"{sweep.name}_heatmap": dg.MetadataValue.md(
            md_image(heatmap_png(result.table, x, y, metric, title), title)
        ),
        f"{sweep.name}_summary": dg.MetadataValue.md(_summary_md(result.summary)),
        f"{sweep.name}_seconds": round(seconds, 2),
    }
    if result.pbo is not None:
        png = pbo_logits_png(result.pbo.logits, result.pbo.pbo, f"{sweep.name}: CSCV logits")
        meta[f"{sweep.name}_pbo_chart"] = dg.MetadataValue.md(md_image(png, "PBO logits"))
    return meta


@dg.multi_asset(
    specs=[
        table_spec(
            "research.sweep",
            "One row per sweep variant: its parameters, headline metrics, its DSR given every "
            "variant, and the sweep's PBO.",
            GROUP,
            SWEEP_READS.deps,
        ),
        table_spec(
            "research.sweep_daily",
            "Daily returns of every sweep variant (for walk-forward).",
            GROUP,
            SWEEP_READS.deps,
        ),
    ],
    pool="warehouse",
)
def research_sweep(
    context: dg.AssetExecutionContext,
    config: BacktestConfig,
    market: MarketDataResource,
    warehouse: WarehouseResource,
):
    """Run every variant of every sweep file through scoring, weights and the share simulation.

    The variants run on ``QUANT_PIPELINE_SWEEP_WORKERS`` processes (they only compute); this
    step alone writes the warehouse, after every variant is done."""
    selected = runnable_strategies(market, warehouse)
    sweeps = {n: s for n, s in load_sweeps().items() if s.strategy in selected}
    tables, dailies, meta = [], [], {}
    if sweeps:
        values, schedules, prices, benchmark = _sweep_inputs(
            SWEEP_READS.reader(warehouse.read_only())
        )
    workers = from_env().sweep_workers
    for name, sweep in sweeps.items():
        started = time.perf_counter()
        result = run_sweep(
            sweep,
            values,
            schedules,
            prices,
            benchmark,
            lambda spec: trading_model(config, spec),
            delisting_return=config.delisting_return,
            map_runs=process_map(workers),
        )
        seconds = time.perf_counter() - started
        context.log.info(
            f"{name}: {len(sweep.variants)} variants in {seconds:.1f} s on {workers} process(es)"
        )
        tables.append(result.table.with_columns(strategy=pl.lit(sweep.strategy)))
        dailies.append(result.daily.with_columns(sweep=pl.lit(name)))
        meta.update(_sweep_metadata(sweep, result, seconds))
    table = pl.concat(tables, how="diagonal_relaxed") if tables else pl.DataFrame()
    daily = pl.concat(dailies) if dailies else pl.DataFrame()
    if tables:
        # the curated inputs' content hash, as backtest.settings: a tear sheet shows the sweep
        # of its strategy only when both were computed from the same data
        table = table.with_columns(
            dataset_version=pl.lit(data_version(warehouse.read_only()), pl.String)
        )
        wh, keys = warehouse.get(), owned_sweeps(market)
        write_owned(wh, market, "research.sweep", table, column="sweep", keys=keys)
        write_owned(wh, market, "research.sweep_daily", daily, column="sweep", keys=keys)
    best = table.sort("sharpe_ratio", descending=True) if tables else table
    yield dg.MaterializeResult(
        asset_key=["research", "sweep"],
        metadata=table_metadata(
            "research.sweep", table, best=dg.MetadataValue.md(markdown_table(best)), **meta
        ),
    )
    yield dg.MaterializeResult(
        asset_key=["research", "sweep_daily"],
        metadata=table_metadata("research.sweep_daily", daily),
    )


@dg.multi_asset(
    specs=[
        table_spec(
            "research.walk_forward",
            "Per sweep and test window: the variant chosen on the training window by the "
            "sweep's objective, its parameters and out-of-sample return.",
            GROUP,
            WALK_FORWARD_READS.deps,
        ),
        table_spec(
            "research.walk_forward_curves",
            "Stitched out-of-sample equity of the walk-forward choice and the in-sample best "
            "variant over the same test days.",
            GROUP,
            WALK_FORWARD_READS.deps,
        ),
    ],
    pool="warehouse",
)
def research_walk_forward(
    context: dg.AssetExecutionContext, market: MarketDataResource, warehouse: WarehouseResource
):
    """Choose on each training window, hold over the next test window, roll forward."""
    read = WALK_FORWARD_READS.reader(warehouse.read_only())
    selected = runnable_strategies(market, warehouse)
    sweeps = {n: s for n, s in load_sweeps().items() if s.strategy in selected}
    params = read("research.sweep") if sweeps else pl.DataFrame()
    daily = read("research.sweep_daily") if sweeps else pl.DataFrame()
    tables, all_curves, meta = [], [], {}
    for name, sweep in sweeps.items():
        rules = sweep.walk_forward
        table, curves = walk_forward(
            daily.filter(pl.col("sweep") == name),
            rules.objective,
            rules.train_years,
            rules.test_years,
            rules.window,
        )
        chosen = params.filter(pl.col("sweep") == name).select("variant", *sweep.parameters)
        table = table.join(chosen, on="variant", how="left").with_columns(
            sweep=pl.lit(name), window_kind=pl.lit(rules.window)
        )
        tables.append(table)
        all_curves.append(curves.with_columns(sweep=pl.lit(name)))
        title = f"{name}: walk-forward ({rules.objective}, {rules.window}) vs in-sample best"
        meta[f"{name}_curves"] = dg.MetadataValue.md(
            md_image(walk_forward_png(curves, title), title)
        )
        context.log.info(f"{name}: {table.height} walk-forward windows")
    table = pl.concat(tables, how="diagonal_relaxed") if tables else pl.DataFrame()
    curves = pl.concat(all_curves) if all_curves else pl.DataFrame()
    if tables:
        wh, keys = warehouse.get(), owned_sweeps(market)
        write_owned(wh, market, "research.walk_forward", table, column="sweep", keys=keys)
        write_owned(wh, market, "research.walk_forward_curves", curves, column="sweep", keys=keys)
    yield dg.MaterializeResult(
        asset_key=["research", "walk_forward"],
        metadata=table_metadata(
            "research.walk_forward",
            table,
            windows=dg.MetadataValue.md(markdown_table(table, 40)),
            **meta,
        ),
    )
    yield dg.MaterializeResult(
        asset_key=["research", "walk_forward_curves"],
        metadata=table_metadata("research.walk_forward_curves", curves, **meta),
    )


@dg.multi_asset(
    specs=[
        table_spec(
            "research.exposures",
            "Per strategy and rebalance date: ex-ante beta to the primary benchmark and "
            "size/value/momentum tilts (mean z-score of the holdings).",
            GROUP,
            EXPOSURE_READS.deps,
        ),
        table_spec(
            "research.sector_exposures",
            "Per strategy, rebalance date and sector: the book's weight beside the universe's "
            "market-cap weight.",
            GROUP,
            EXPOSURE_READS.deps,
        ),
    ],
    pool="warehouse",
)
def research_exposures(market: MarketDataResource, warehouse: WarehouseResource):
    """Beta, style tilts and sector weights vs the universe of every strategy's target weights
    (a run restricted to some strategies: of those strategies, the others' rows are kept)."""
    from quant_pipeline.core.research.exposures import (
        ex_ante_beta,
        sector_exposures,
        style_tilts,
    )
    from quant_pipeline.core.strategies.weighting import PriceHistory

    read = EXPOSURE_READS.reader(warehouse.read_only())
    weights = read("portfolio.target_weights").filter(pl.col("weight") > 0)
    if is_restricted(market):
        weights = weights.filter(pl.col("strategy").is_in(owned_strategies(market)))
    values = read("factors.values")
    prices, benchmark = _prices_and_benchmark(read)
    history = PriceHistory(prices, weights["ticker"].unique().to_list())
    table = style_tilts(weights, values).join(
        ex_ante_beta(weights, history, benchmark), on=["strategy", "rebalance_date"], how="left"
    )
    sectors = sector_exposures(weights, values)
    stamp = fingerprints(weights, "strategy", WEIGHTS_FINGERPRINT).rename(
        {"fingerprint": "weights_fingerprint"}
    )
    table = table.join(stamp, on="strategy", how="left")
    sectors = sectors.join(stamp, on="strategy", how="left")
    wh = warehouse.get()
    write_owned(wh, market, "research.exposures", table)
    write_owned(wh, market, "research.sector_exposures", sectors)
    means = (
        table.drop("weights_fingerprint")
        .group_by("strategy")
        .agg(pl.exclude("rebalance_date").mean())
        .sort("strategy")
    )
    yield dg.MaterializeResult(
        asset_key=["research", "exposures"],
        metadata=table_metadata(
            "research.exposures", table, mean_by_strategy=dg.MetadataValue.md(markdown_table(means))
        ),
    )
    yield dg.MaterializeResult(
        asset_key=["research", "sector_exposures"],
        metadata=table_metadata("research.sector_exposures", sectors),
    )


@dg.multi_asset(
    specs=[
        table_spec(
            "research.attribution",
            "Per strategy: OLS of its daily excess return on the market, sector-minus-market and "
            "style long-short returns; coefficients, t-stats, R² and each term's contribution "
            "to the annualised excess return (alpha = the residual).",
            GROUP,
            ATTRIBUTION_READS.deps,
        ),
        table_spec(
            "research.attribution_returns",
            "Daily returns of the equal-weight sector portfolios and of the value, momentum, "
            "size and quality top-minus-bottom quintile portfolios (point in time).",
            GROUP,
            ATTRIBUTION_READS.deps,
        ),
    ],
    pool="warehouse",
)
def research_attribution(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """Returns-based attribution of every strategy's excess return to market, sectors, styles."""
    from quant_pipeline.core.research.attribution import attribution, attribution_returns
    from quant_pipeline.defs.reports import run_risk_free_rate

    read = ATTRIBUTION_READS.reader(warehouse.read_only())
    daily = read("backtest.daily", columns=["strategy", *DAILY_FINGERPRINT])
    prices = read("curated.prices", columns=["ticker", "date", "daily_return"])
    returns = attribution_returns(read("factors.values"), prices)
    rf = run_risk_free_rate(read("backtest.metric_settings"))
    table = attribution(daily, returns, rf)
    stamp = fingerprints(daily, "strategy", DAILY_FINGERPRINT)
    table = table.join(stamp.rename({"fingerprint": "daily_fingerprint"}), on="strategy")
    left_out = sorted(set(daily["strategy"]) - set(table["strategy"]))
    if left_out:
        context.log.warning(f"too few complete days to attribute: {left_out}")
    wh = warehouse.get()
    wh.replace_table("research.attribution", table)
    wh.replace_table("research.attribution_returns", returns)
    summary = (
        table.pivot(on="term", index="strategy", values="contribution")
        .join(table.select("strategy", "excess_return", "r_squared").unique(), on="strategy")
        .sort("strategy")
    )
    yield dg.MaterializeResult(
        asset_key=["research", "attribution"],
        metadata=table_metadata(
            "research.attribution",
            table,
            contributions=dg.MetadataValue.md(markdown_table(summary, 40)),
        ),
    )
    yield dg.MaterializeResult(
        asset_key=["research", "attribution_returns"],
        metadata=table_metadata("research.attribution_returns", returns),
    )


research_guard_assets = [
    research_multiple_testing,
    research_sweep,
    research_walk_forward,
    research_exposures,
    research_attribution,
]

research_guards_job = dg.define_asset_job(
    "research_guards_job",
    selection=dg.AssetSelection.assets(*research_guard_assets),
    description="Sweeps, walk-forward, deflated Sharpe and PBO over an already built warehouse.",
)


@dg.asset_check(
    asset=dg.AssetKey(["portfolio", "target_weights"]),
    blocking=True,
    additional_deps=[dg.AssetKey(["curated", "prices"])],
)
def covariance_uses_only_prior_prices(
    market: MarketDataResource, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    """Covariance-weighted strategies: the covariance of D equals one from prices before D."""
    from quant_pipeline.core.backtest.lookahead_audit import sample_dates
    from quant_pipeline.core.strategies.weighting import (
        COVARIANCE_SCHEMES,
        WeightingRules,
        audit_covariance,
    )

    specs = {
        n: s
        for n, s in runnable_strategies(market, warehouse).items()
        if s.kind == "factor" and s.portfolio.weighting in COVARIANCE_SCHEMES
    }
    if not specs:
        return dg.AssetCheckResult(passed=True, metadata={"strategies": "none use a covariance"})
    read = COVARIANCE_READS.reader(warehouse.read_only())
    weights = read("portfolio.target_weights")
    prices = read("curated.prices", columns=["ticker", "date", "adj_close"])
    found = []
    for name, spec in specs.items():
        own = weights.filter(pl.col("strategy") == name)
        dates = sample_dates(own["rebalance_date"].unique().to_list())
        found.append(
            audit_covariance(prices, own, WeightingRules.from_spec(spec), dates).with_columns(
                strategy=pl.lit(name)
            )
        )
    report = pl.concat(found)
    bad = report.filter(~pl.col("matches"))
    return dg.AssetCheckResult(
        passed=bad.is_empty(),
        metadata={
            "dates_checked": report.height,
            "mismatches": dg.MetadataValue.md(markdown_table(bad if bad.height else report)),
        },
    )


research_guard_checks = [covariance_uses_only_prior_prices]

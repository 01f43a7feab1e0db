"""Backtest assets: the share-based simulation per strategy (daily, trades, fills, positions,
unfilled targets, quarterly summary), metrics and the comparison."""

from dataclasses import dataclass, field

import dagster as dg
import polars as pl

import quant_pipeline.core.backtest.blend as blend_module
import quant_pipeline.core.backtest.lean_statistics as lean_module
import quant_pipeline.core.backtest.share_simulation as share_simulation_module
import quant_pipeline.defs.trading as trading_module
from quant_pipeline.app.recommendation import data_version
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
from quant_pipeline.core.backtest.row_flags import strategy_flags, with_skipped
from quant_pipeline.core.backtest.share_simulation import simulate, unfilled_targets
from quant_pipeline.core.data.calendar import TRADING_DAYS_PER_YEAR
from quant_pipeline.core.data.fingerprints import digest
from quant_pipeline.core.data.schema import CLOSE_PRICE_COLUMNS
from quant_pipeline.core.reporting import backtest_charts as plots
from quant_pipeline.core.reporting.research_charts import equity_curves_png
from quant_pipeline.core.strategies.spec import StrategySpec
from quant_pipeline.defs.incremental import (
    Incremental,
    code_version,
    digest_map,
    reuse_metadata,
    spec_digest,
    strategy_digests,
)
from quant_pipeline.defs.integrity import BIAS_LABEL_READS, bias_labels_table
from quant_pipeline.defs.metadata import markdown_table, table_metadata
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.defs.strategies import (
    is_restricted,
    owned_strategies,
    strategy_plan,
    write_owned,
)
from quant_pipeline.defs.tables import reads, table_spec
from quant_pipeline.defs.trading import BacktestConfig, model_settings, trading_model
from quant_pipeline.settings import from_env

GROUP = "backtest"
KINDS = {"duckdb", "polars"}
SIMULATION_TABLES = {
    "fills": "Every simulated order: side, shares, price, execution price, commission, slippage.",
    "positions": "Shares, value and weight held after each rebalance, per strategy and ticker.",
    "unfilled_targets": "Targets not (fully) bought: no recent price, price above target, no cash.",
    "settings": "The trading model and benchmark each strategy's backtest used (or why none).",
}
RESULT_TABLES = {
    "daily": "Daily portfolio and benchmark returns, equity, drawdown, turnover, costs.",
    "trades": "Every position: entry and exit dates and prices, return, fees, sector.",
    "quarterly": "Quarterly portfolio, benchmark and excess returns per strategy.",
    "labels": "How each backtest was made: universe, survivorship, timing, vintage.",
    **SIMULATION_TABLES,
    "blend_attribution": "Each blend's sleeves: weight, sleeve return, contribution to the blend.",
}
BACKTEST_READS = reads(
    "portfolio.target_weights",
    "portfolio.target_weights_inputs",
    "curated.prices",
    "curated.membership",
    "backtest.benchmarks",
    *BIAS_LABEL_READS,
)
METRICS_READS = reads(
    "backtest.daily",
    "backtest.daily_inputs",
    "backtest.trades",
    "backtest.settings",
    "backtest.fills",
    "backtest.benchmarks",
    "curated.prices",
)
LEAN = Incremental(
    "backtest.lean_statistics",
    ("strategy",),
    "Per strategy: the digest its LEAN statistics were computed from (its backtest's input "
    "digest, which covers its daily rows, fills and the prices, the risk-free rate, the "
    "code); unchanged = its statistics are kept.",
)
NOT_BACKTESTED = "not backtested: "
BACKTESTS = Incremental(
    "backtest.daily",
    ("strategy",),
    "Per strategy: the digest of what its backtest was computed from (its target weights' "
    "digest, its spec, the trading model, the prices, benchmarks and membership, the dataset "
    "version, the code); unchanged = its backtest rows are kept.",
)
# the tables whose rows are per strategy and kept with backtest.daily's (labels are rebuilt)
PER_STRATEGY_TABLES = ("daily", "trades", "quarterly", *SIMULATION_TABLES, "blend_attribution")


def backtest_digests(read, specs: dict, config: BacktestConfig, version: str | None):
    """Each strategy's backtest input digest (a blend's: its spec and its sleeves' digests)."""
    weights = digest_map(read("portfolio.target_weights_inputs"))
    inputs = [
        read.content_hash(t)
        for t in ("curated.prices", "curated.membership", "backtest.benchmarks")
    ]
    code = code_version(share_simulation_module, backtest, blend_module, trading_module)
    common = (code, repr(config), version, *inputs)
    parts = {
        n: (*common, spec_digest(s), weights.get(n)) for n, s in specs.items() if s.blend is None
    }
    for name, spec in specs.items():
        if spec.blend is not None:
            sleeves = [(s, parts.get(s)) for s, _ in spec.blend.sleeves]
            parts[name] = (*common, spec_digest(spec), sleeves)
    return strategy_digests(parts)


@dataclass
class Simulations:
    """What the backtest step built so far: frames per output table, models, skipped names."""

    outputs: dict[str, list[pl.DataFrame]] = field(
        default_factory=lambda: {
            t: [] for t in ("daily", "trades", "quarterly", *SIMULATION_TABLES)
        }
    )
    attributions: list[pl.DataFrame] = field(
        default_factory=lambda: [pl.DataFrame(schema=ATTRIBUTION_SCHEMA)]
    )
    models: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def own_benchmarks(settings: pl.DataFrame, primary: str) -> dict[str, str]:
    """Strategy -> benchmark for the strategies ``backtest.settings`` compares with a benchmark
    other than the run's ``primary`` one (their benchmark_return is that other series)."""
    if "benchmark" not in settings.columns:
        return {}
    other = settings.filter(pl.col("benchmark").is_not_null() & (pl.col("benchmark") != primary))
    return dict(other.select("strategy", "benchmark").unique().iter_rows())


def primary_benchmark(bench_table: pl.DataFrame) -> tuple[str, pl.DataFrame]:
    """The name and daily return series of the one benchmark ``backtest.benchmarks`` marks
    primary; a table marking none or several fails the step."""
    primary = bench_table.filter(pl.col("is_primary"))["benchmark"].unique().to_list()
    if len(primary) != 1:
        raise dg.Failure(f"backtest.benchmarks must mark one primary benchmark, found {primary}")
    return primary[0], benchmark_series(bench_table, primary[0])


def strategy_benchmark(
    spec: StrategySpec, bench_table: pl.DataFrame, primary: tuple[str, pl.DataFrame]
) -> tuple[str, pl.DataFrame]:
    """The benchmark ``spec`` is compared with: its own ``benchmark`` ticker when
    ``backtest.benchmarks`` holds it (the data has its prices), else the run's primary."""
    if spec.benchmark is not None and spec.benchmark in set(bench_table["benchmark"].to_list()):
        return spec.benchmark, benchmark_series(bench_table, spec.benchmark)
    return primary


def simulate_strategies(
    sims: Simulations,
    config: BacktestConfig,
    specs: dict[str, StrategySpec],
    weights: pl.DataFrame,
    prices: pl.DataFrame,
    benchmarks: tuple[pl.DataFrame, tuple[str, pl.DataFrame]],
) -> None:
    """Trade each non-blend strategy's target weights; strategies without weights are skipped.
    ``benchmarks``: (backtest.benchmarks, the primary's (name, series))."""
    bench_table, primary = benchmarks
    for name, spec in specs.items():
        name_of_benchmark, series = strategy_benchmark(spec, bench_table, primary)
        if spec.kind == "blend":
            continue
        w = weights.filter(pl.col("strategy") == name)
        if w.filter(pl.col("weight") > 0).is_empty():
            sims.skipped[name] = "no target weights (no eligible names or no signal)"
            continue
        model = trading_model(config, spec)
        sims.models[name] = model.describe()
        result = simulate(
            w,
            prices,
            model,
            benchmark=series,
            delisting_return=config.delisting_return,
            strategy=name,
        )
        sims.outputs["daily"].append(result.daily)
        sims.outputs["trades"].append(result.trades)
        sims.outputs["fills"].append(result.fills)
        sims.outputs["positions"].append(result.positions)
        sims.outputs["unfilled_targets"].append(unfilled_targets(result))
        sims.outputs["settings"].append(
            model_settings(model).select(
                pl.lit(name).alias("strategy"),
                pl.lit(name_of_benchmark).alias("benchmark"),
                pl.all(),
                pl.lit(sims.models[name]).alias("description"),
            )
        )


def blend_strategies(
    sims: Simulations,
    specs: dict[str, StrategySpec],
    benchmark: pl.DataFrame,
    stored_daily: pl.DataFrame | None = None,
) -> None:
    """Each blend's daily returns from its sleeves, simulated now or kept from the last run
    (``stored_daily``); skipped when a sleeve is missing."""
    daily = sims.outputs["daily"]
    parts = [*daily, *([stored_daily] if stored_daily is not None and stored_daily.height else [])]
    sleeves = pl.concat(parts, how="diagonal_relaxed") if parts else None
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
            sims.skipped[name] = str(exc)
            continue
        daily.append(blend_in_currency(d, sleeves, dict(spec.blend.sleeves)))
        sims.attributions.append(a)
        sims.models[name] = "blend of " + ", ".join(f"{w:.0%} {s}" for s, w in spec.blend.sleeves)


def quarterly_and_charts(sims: Simulations, benchmark_name: str) -> dict[str, str]:
    """Add every strategy's quarterly summary; return its equity chart (markdown) by name."""
    charts = {}
    for d in sims.outputs["daily"]:
        name = d["strategy"][0]
        sims.outputs["quarterly"].append(backtest.quarterly_summary(d))
        charts[name] = plots.md_image(
            plots.equity_chart_png(d, f"{name}: equity vs {benchmark_name} benchmark"),
            f"{name} equity curve",
        )
    return charts


def result_frames(sims: Simulations) -> dict[str, pl.DataFrame]:
    """One frame per output table (labels aside), each strategy's rows stacked."""
    frames = {
        t: pl.concat(parts, how="diagonal_relaxed") for t, parts in sims.outputs.items() if parts
    }
    frames["blend_attribution"] = pl.concat(sims.attributions, how="vertical_relaxed")
    return frames


def daily_metadata(
    daily: pl.DataFrame,
    sims: Simulations,
    benchmark_name: str,
    charts: dict[str, str],
    labels: pl.DataFrame,
) -> dict[str, object]:
    """What the backtest/daily page shows: final equity and costs, models, curves, labels."""
    final = daily.group_by("strategy").agg(
        pl.col("equity").last(),
        pl.col("portfolio_value").last(),
        pl.col("fees").sum().alias("total_fees"),
        pl.col("slippage").sum().alias("total_slippage"),
        pl.col("date").last(),
    )
    return {
        **table_metadata("backtest.daily", daily),
        "benchmark": benchmark_name,
        "trading_model": dg.MetadataValue.md(
            "\n".join(f"- **{n}**: {text}" for n, text in sims.models.items())
        ),
        "final_equity": dg.MetadataValue.md(markdown_table(final.sort("strategy"), max_rows=50)),
        "skipped_strategies": dg.MetadataValue.json(sims.skipped),
        **{f"equity_curve_{name}": dg.MetadataValue.md(md) for name, md in charts.items()},
        "bias_labels": dg.MetadataValue.md(markdown_table(labels, max_rows=100)),
    }


def table_results(frames: dict[str, pl.DataFrame], labels: pl.DataFrame):
    """The materializations of every output table but backtest/daily."""
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


@dg.multi_asset(
    specs=[
        *(
            table_spec(f"backtest.{table}", description, GROUP, BACKTEST_READS.deps)
            for table, description in RESULT_TABLES.items()
        ),
        BACKTESTS.spec(GROUP, BACKTEST_READS.deps),
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
    read = BACKTEST_READS.reader(warehouse.read_only())
    plan = strategy_plan(market, warehouse)
    version = data_version(warehouse.read_only())
    reuse = BACKTESTS.plan(
        warehouse, market, backtest_digests(read, plan.runnable, config, version)
    )
    computed = set(reuse.computed_values("strategy"))
    specs = {n: s for n, s in plan.runnable.items() if n in computed}
    prices = read("curated.prices", columns=CLOSE_PRICE_COLUMNS)
    bench_table = read("backtest.benchmarks")
    benchmark_name, benchmark = primary_benchmark(bench_table)
    sims = Simulations(skipped=dict(plan.skipped))
    simulate_strategies(
        sims,
        config,
        specs,
        read("portfolio.target_weights", filters={"strategy": sorted(specs)}),
        prices,
        (bench_table, (benchmark_name, benchmark)),
    )
    kept = sorted(set(plan.runnable) - computed)
    stored = _stored_rows(warehouse, kept)
    blend_strategies(sims, specs, benchmark, stored.get("daily"))
    for name, reason in sims.skipped.items():
        context.log.warning(f"strategy {name!r} left out of the backtest: {reason}")
        sims.outputs["settings"].append(
            pl.DataFrame({"strategy": [name], "description": [NOT_BACKTESTED + reason]})
        )
    if not sims.outputs["daily"] and not kept:
        raise dg.Failure(f"no strategy could be backtested: {sims.skipped}")
    charts = quarterly_and_charts(sims, benchmark_name)
    frames = result_frames(sims)
    if "settings" in frames:
        frames["settings"] = frames["settings"].with_columns(
            dataset_version=pl.lit(version, pl.String)
        )
    context.log.info(f"dataset version {version} (curated inputs' content hash)")
    wh = warehouse.get()
    BACKTESTS.write_tables(
        wh,
        market,
        reuse,
        {f"backtest.{t}": frames.get(t, _empty_like(stored.get(t))) for t in PER_STRATEGY_TABLES},
    )
    everything, labels = _all_labels(wh, read, market, plan, config, prices, sims)
    write_owned(wh, market, "backtest.labels", labels)
    daily_meta = daily_metadata(everything["daily"], sims, benchmark_name, charts, labels)
    yield dg.MaterializeResult(
        asset_key=["backtest", "daily"], metadata={**daily_meta, **reuse_metadata(reuse)}
    )
    yield dg.MaterializeResult(
        asset_key=BACKTESTS.digests.split("."),
        metadata={**table_metadata(BACKTESTS.digests, reuse.current), **reuse_metadata(reuse)},
    )
    # the pages show every strategy's stored rows, kept and recomputed alike
    yield from table_results(
        {t: wh.read_table(f"backtest.{t}") for t in PER_STRATEGY_TABLES if t != "daily"}, labels
    )


def _all_labels(wh, read, market, plan, config, prices: pl.DataFrame, sims: Simulations):
    """Every backtested strategy's bias labels, kept and recomputed alike (their stored daily,
    trades and settings), and the trading model of each in ``sims.models``."""
    everything = {t: wh.read_table(f"backtest.{t}") for t in ("daily", "trades", "settings")}
    models = {
        **dict(
            everything["settings"]
            .filter(~pl.col("description").str.starts_with(NOT_BACKTESTED))
            .select("strategy", "description")
            .iter_rows()
        ),
        **sims.models,
    }
    backtested = set(everything["daily"]["strategy"].unique().to_list())
    if is_restricted(market):  # the others' labels stay as their own runs wrote them
        backtested &= set(owned_strategies(market))
    labels = bias_labels_table(
        read,
        market.settings().source,
        {n: s for n, s in plan.runnable.items() if n in backtested and n in models},
        prices,
        read("curated.membership"),
        delisting_return=config.delisting_return,
        trading_models={n: m for n, m in models.items() if n in backtested},
        trades=everything["trades"],
        plan=plan,
    )
    sims.models = models
    return everything, labels


def _stored_rows(warehouse: WarehouseResource, kept: list[str]) -> dict[str, pl.DataFrame]:
    """The stored rows of the kept strategies (a computed blend needs its kept sleeves' daily
    rows) and each table's empty frame (the schema a step that recomputed nothing writes)."""
    wh = warehouse.read_only()
    out = {}
    for table in PER_STRATEGY_TABLES:
        name = f"backtest.{table}"
        if wh.has_table(name):  # no kept strategy: the table's empty frame
            out[table] = wh.read_table(name, filters={"strategy": kept})
    return out


def _empty_like(frame: pl.DataFrame | None) -> pl.DataFrame:
    return pl.DataFrame() if frame is None else frame.clear()


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
    """The annual risk-free rate of Sharpe, Sortino, alpha and LEAN's statistics (e.g. 0.02;
    None reads QUANT_PIPELINE_RISK_FREE_RATE, default 0) and the common window's tolerance in
    days (None reads QUANT_PIPELINE_COMMON_WINDOW_TOLERANCE_DAYS, default 365)."""

    risk_free_rate: float | None = None
    common_window_tolerance_days: int | None = None


def metric_settings(risk_free_rate: float, tolerance_days: int) -> pl.DataFrame:
    """``backtest.metric_settings``: the settings every metric table of the run used."""
    return pl.DataFrame(
        {
            "setting": ["risk_free_rate", "periods_per_year", "common_window_tolerance_days"],
            "value": [risk_free_rate, float(TRADING_DAYS_PER_YEAR), float(tolerance_days)],
        }
    )


METRICS_TABLES: dict[str, str] = {
    "backtest.metrics": "Performance statistics per strategy and for the benchmark over the "
    "common window (strategy, metric, value).",
    "backtest.comparison": "Each strategy over its own window (start, end): headline metrics and "
    "the benchmark's CAGR over the same dates, excess CAGR.",
    "backtest.comparison_common_window": "Every strategy and the benchmark over one common "
    "window (strategies starting within the tolerance of the median start; later ones flagged "
    "why).",
    "backtest.lean_statistics": "QuantConnect LEAN's statistics table under LEAN's names and "
    "definitions (strategy, statistic, value, display).",
    "backtest.metric_settings": "The risk-free rate and periods per year the metric tables used.",
}


def lean_digests(
    read, daily: pl.DataFrame, fills: pl.DataFrame, code: str, rf: float
) -> pl.DataFrame:
    """Per strategy of ``daily``: the digest of its LEAN statistics' inputs: the statistics'
    code, the risk-free rate, periods per year and its backtest's input digest
    (``backtest.daily_inputs``: its daily rows, fills and the prices are a function of it). A
    strategy without a backtest digest gets one of its daily rows, fills and the prices."""
    head = f"{code}|{rf!r}|{TRADING_DAYS_PER_YEAR}|"
    strategies = daily.select(pl.col("strategy").unique().sort())
    frame = strategies.join(read("backtest.daily_inputs"), on="strategy", how="left")
    missing = frame.filter(pl.col("digest").is_null())["strategy"].to_list()
    if missing:
        prices = read.content_hash("curated.prices")
        rows = {
            name: digest(
                str(daily.filter(pl.col("strategy") == name).hash_rows().sum()),
                str(fills.filter(pl.col("strategy") == name).hash_rows().sum()),
                prices,
            )
            for name in missing
        }
        frame = frame.with_columns(
            digest=pl.col("digest").fill_null(pl.col("strategy").replace_strict(rows, default=None))
        )
    return frame.select("strategy", digest=pl.concat_str(pl.lit(head), pl.col("digest")))


def write_lean_statistics(read, wh, warehouse, market, daily: pl.DataFrame, rf: float):
    """Compute and write ``backtest.lean_statistics`` of the strategies whose backtest inputs
    changed (the others' rows are kept); returns the stored table and the reuse plan."""
    code = code_version(lean_module)
    all_fills = read("backtest.fills")
    reuse = LEAN.plan(warehouse, market, lean_digests(read, daily, all_fills, code, rf))
    computed = reuse.computed_values("strategy")
    fills = all_fills.filter(pl.col("strategy").is_in(computed))
    # capacity reads the bars of traded tickers only (not every one of a 7,000-ticker folder)
    traded_bars = read(
        "curated.prices",
        columns=["ticker", "date", "close", "volume"],
        filters={"ticker": fills["ticker"].unique().sort().to_list()},
    )
    mine = daily.filter(pl.col("strategy").is_in(computed))
    LEAN.write(wh, market, reuse, lean_statistics(mine, fills, traded_bars, rf))
    return wh.read_table(LEAN.table), reuse


@dg.multi_asset(
    name="backtest__metrics",
    specs=[
        *(
            table_spec(table, description, GROUP, METRICS_READS.deps)
            for table, description in METRICS_TABLES.items()
        ),
        LEAN.spec(GROUP, METRICS_READS.deps),
    ],
    pool="warehouse",
)
def backtest_metrics(
    config: MetricsConfig, market: MarketDataResource, warehouse: WarehouseResource
):
    """Every strategy's metrics (long), the comparisons `quant-pipeline run` prints (own windows,
    one common window) and LEAN's statistics, at the run's risk-free rate."""
    rf = config.risk_free_rate if config.risk_free_rate is not None else from_env().risk_free_rate
    tolerance = config.common_window_tolerance_days
    if tolerance is None:
        tolerance = from_env().common_window_tolerance_days
    read = METRICS_READS.reader(warehouse.read_only())
    daily = read("backtest.daily")
    trades = read("backtest.trades")
    settings = read("backtest.settings")
    own = own_benchmarks(settings, primary_benchmark(read("backtest.benchmarks"))[0])
    long = metrics_for_strategies(daily, trades, rf, tolerance, own)
    # flags: never fired / mostly cash / too few trades (core.backtest.row_flags)
    comparison = comparison_by_window(daily, long).join(
        strategy_flags(daily, trades), on="strategy", how="left", maintain_order="left"
    )
    skipped = settings.filter(pl.col("description").str.starts_with(NOT_BACKTESTED)).select(
        "strategy", pl.col("description").str.strip_prefix(NOT_BACKTESTED).alias("reason")
    )
    comparison = with_skipped(comparison, skipped)
    # backtest.daily runs every strategy to the last market date, so a common window exists
    # unless a strategy starts on that date (metrics_for_strategies then fails, naming them)
    frames = {
        "backtest.metrics": long,
        "backtest.comparison": comparison,
        "backtest.comparison_common_window": comparison_common_window(daily, rf, tolerance, own),
        "backtest.metric_settings": metric_settings(rf, tolerance),
    }
    wh = warehouse.get()
    for table, frame in frames.items():
        wh.replace_table(table, frame)
    lean, lean_reuse = write_lean_statistics(read, wh, warehouse, market, daily, rf)
    frames["backtest.lean_statistics"] = lean
    extra = {
        "backtest.metrics": {
            "risk_free_rate": rf,
            "equity_curves": dg.MetadataValue.md(
                plots.md_image(equity_curves_png(daily), "every strategy vs the benchmark")
            ),
        },
        "backtest.lean_statistics": {
            "statistics": dg.MetadataValue.md(
                markdown_table(
                    lean.pivot(on="strategy", index="statistic", values="display"), max_rows=50
                )
            )
        },
    }
    for table, frame in frames.items():
        shown = (
            {}
            if table == "backtest.lean_statistics"
            else {"table": dg.MetadataValue.md(markdown_table(frame, max_rows=50))}
        )
        reused = reuse_metadata(lean_reuse) if table == LEAN.table else {}
        yield dg.MaterializeResult(
            asset_key=table.split("."),
            metadata={**table_metadata(table, frame), **shown, **extra.get(table, {}), **reused},
        )
    yield dg.MaterializeResult(
        asset_key=LEAN.digests.split("."),
        metadata={**table_metadata(LEAN.digests, lean_reuse.current), **reuse_metadata(lean_reuse)},
    )


backtest_assets = [backtest_results, backtest_metrics]

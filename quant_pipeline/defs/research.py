"""Research assets: factor diagnostics (IC, quintiles, turnover) and "is it luck?" baselines."""

from datetime import timedelta

import dagster as dg
import polars as pl

import quant_pipeline.core.backtest.metrics as metrics_module
import quant_pipeline.core.research.factor_diagnostics as diagnostics_module
import quant_pipeline.core.research.luck_baselines as luck_module
import quant_pipeline.core.research.tables as tables_module
from quant_pipeline.core.data.fingerprints import digest, hashes_before
from quant_pipeline.core.factors.values import FACTOR_NAMES
from quant_pipeline.core.reporting import backtest_charts as plots
from quant_pipeline.core.reporting.research_charts import (
    ic_summary_png,
    luck_png,
    quantile_returns_png,
)
from quant_pipeline.core.research.factor_diagnostics import forward_returns
from quant_pipeline.core.research.tables import (
    LUCK_SCHEMA,
    MIN_CROSS_SECTION,
    PERIODS_PER_YEAR,
    factor_diagnostics,
    luck_report,
    signal_counts,
)
from quant_pipeline.defs.incremental import (
    Incremental,
    code_version,
    digest_map,
    reuse_metadata,
    spec_digest,
    strategy_digests,
)
from quant_pipeline.defs.metadata import markdown_table, table_metadata
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.defs.strategies import runnable_strategies, selected_strategies
from quant_pipeline.defs.tables import reads, table_spec

GROUP = "research"
KINDS = {"duckdb", "polars"}
N_RANDOM_PORTFOLIOS = 200
SEED = 20240601
# factors judged in factors.values (price, volume and size are filters more than factors)
DIAGNOSED = tuple(f for f in FACTOR_NAMES if f not in ("price", "avg_volume", "avg_dollar_volume"))


class FactorDiagnosticsConfig(dg.Config):
    """Run config of the factor diagnostics (launchpad: ``ops: factor_diagnostics_assets``)."""

    # A rebalance date enters the IC / quantile averages of research.factor_summary only when
    # this many names have both a factor value and a forward return.
    min_cross_section: int = MIN_CROSS_SECTION


DIAGNOSTICS_READS = reads(
    "factors.rebalance_dates",
    "factors.values",
    "factors.values_inputs",
    "factors.scores",
    "factors.scores_inputs",
    "curated.prices",
)
DIAGNOSTICS = Incremental(
    "research.factor_ic",
    ("factor",),
    "Per factor (and strategy composite): the digest of what its IC, quintiles and summary "
    "were computed from (the factor values' or the strategy's scores' digests, the prices, "
    "the schedule, min_cross_section, the code); unchanged = kept.",
)
DIAGNOSTICS_TABLES = ("research.factor_ic", "research.factor_quantiles", "research.factor_summary")
LUCK_READS = reads(
    "factors.rebalance_dates",
    "factors.scores",
    "factors.scores_inputs",
    "portfolio.target_weights",
    "portfolio.target_weights_inputs",
    "backtest.daily",
    "backtest.daily_inputs",
    "curated.prices",
)
LUCK = Incremental(
    "research.luck",
    ("strategy",),
    "Per factor strategy: the digest of what its luck baseline was computed from (its scores', "
    "target weights' and backtest's digests, the prices, its schedule and spec, the number of "
    "random portfolios, the seed, the code); unchanged = kept.",
)
RANDOM_PORTFOLIOS = "research.luck_random_portfolios"
RANDOM_SCHEMA = {
    "strategy": pl.String(),
    "portfolio_id": pl.Int64(),
    "n_periods": pl.Int64(),
    "cagr": pl.Float64(),
    "sharpe": pl.Float64(),
}


def _schedule(sched: pl.DataFrame, frequency: str) -> list:
    """The sorted rebalance dates of one frequency in factors.rebalance_dates."""
    return sched.filter(pl.col("frequency") == frequency)["rebalance_date"].sort().to_list()


@dg.multi_asset(
    specs=[
        table_spec(
            "research.factor_ic",
            "Per factor and rebalance date: Spearman IC vs next-period return, "
            "top-minus-bottom quintile spread, top-quintile turnover, rank autocorrelation.",
            GROUP,
            DIAGNOSTICS_READS.deps,
        ),
        table_spec(
            "research.factor_quantiles",
            "Per factor, rebalance date and quintile: mean next-period return.",
            GROUP,
            [dg.AssetKey(["research", "factor_ic"]), *DIAGNOSTICS_READS.deps],
        ),
        table_spec(
            "research.factor_summary",
            "Per factor: mean IC, t-stat, hit rate, mean spread, turnover, autocorr, over dates "
            "with at least min_cross_section names, with the dates used.",
            GROUP,
            [dg.AssetKey(["research", "factor_ic"]), *DIAGNOSTICS_READS.deps],
        ),
        DIAGNOSTICS.spec(GROUP, DIAGNOSTICS_READS.deps),
    ],
    pool="warehouse",
)
def factor_diagnostics_assets(
    config: FactorDiagnosticsConfig, market: MarketDataResource, warehouse: WarehouseResource
):
    """Judge every factor (and every scored strategy's composite) against forward returns."""
    read = DIAGNOSTICS_READS.reader(warehouse.read_only())
    min_names = config.min_cross_section
    sched = read("factors.rebalance_dates")
    frequency = next(f for f in PERIODS_PER_YEAR if f in set(sched["frequency"]))
    scored = {n: s for n, s in runnable_strategies(market, warehouse).items() if s.scored}
    reuse = DIAGNOSTICS.plan(
        warehouse, market, diagnostics_digests(read, sched, frequency, scored, min_names)
    )
    computed = _diagnose(read, sched, frequency, scored, reuse, min_names)
    wh = warehouse.get()
    # the factors themselves and the composites of the run's strategies
    owned = [*DIAGNOSED, *(f"strategy:{n}" for n in selected_strategies(market))]
    DIAGNOSTICS.write_tables(
        wh, market, reuse, dict(zip(DIAGNOSTICS_TABLES, computed, strict=True)), "factor", owned
    )
    # the pages show every factor's stored rows, kept and recomputed alike
    ic, quantiles, summary = (wh.read_table(t) for t in DIAGNOSTICS_TABLES)
    summary_md = markdown_table(summary.sort("mean_ic", descending=True), max_rows=60)
    charts = {}
    if summary.height:
        charts = {
            "ic_chart": dg.MetadataValue.md(
                plots.md_image(ic_summary_png(summary), "mean IC per factor")
            ),
            "quantile_chart": dg.MetadataValue.md(
                plots.md_image(quantile_returns_png(quantiles), "quintile returns per factor")
            ),
        }
    recomputed = {"rows_recomputed": computed[0].height, **reuse_metadata(reuse)}
    yield dg.MaterializeResult(
        asset_key=["research", "factor_ic"],
        metadata=table_metadata(
            "research.factor_ic", ic, frequency=frequency, **charts, **recomputed
        ),
    )
    yield dg.MaterializeResult(
        asset_key=DIAGNOSTICS.digests.split("."),
        metadata={**table_metadata(DIAGNOSTICS.digests, reuse.current), **reuse_metadata(reuse)},
    )
    yield dg.MaterializeResult(
        asset_key=["research", "factor_quantiles"],
        metadata=table_metadata("research.factor_quantiles", quantiles, **charts),
    )
    yield dg.MaterializeResult(
        asset_key=["research", "factor_summary"],
        metadata=table_metadata(
            "research.factor_summary",
            summary,
            min_cross_section=min_names,
            summary=dg.MetadataValue.md(summary_md),
            **charts,
        ),
    )


def _diagnose(
    read, sched: pl.DataFrame, frequency: str, scored: dict, reuse, min_names: int
) -> list[pl.DataFrame]:
    """research.factor_ic, factor_quantiles and factor_summary rows of the computed keys."""
    todo = set(reuse.computed_values("factor"))
    parts = []
    if todo:
        prices = read("curated.prices", columns=["ticker", "date", "adj_close"])
        dates = _schedule(sched, frequency)
        fwd = forward_returns(prices, dates)
        if todo & set(DIAGNOSED):  # the factors share one digest: all or none
            values = read("factors.values").filter(
                pl.col("in_universe") & pl.col("price").is_not_null()
            )
            values = values.filter(pl.col("rebalance_date").is_in(dates))
            parts.append(factor_diagnostics(values, fwd, DIAGNOSED, min_names=min_names))
        # each scored strategy's composite, on its own schedule (rank 1 = best, so negate it)
        scores = read("factors.scores").filter(pl.col("eligible"))
        for name, spec in scored.items():
            if f"strategy:{name}" not in todo:
                continue
            own = _schedule(sched, spec.rebalance)
            frame = scores.filter(pl.col("strategy") == name).select(
                "rebalance_date",
                "ticker",
                (-pl.col("rank").cast(pl.Float64)).alias(f"strategy:{name}"),
            )
            own_fwd = fwd if own == dates else forward_returns(prices, own)
            parts.append(
                factor_diagnostics(frame, own_fwd, [f"strategy:{name}"], min_names=min_names)
            )
    return [pl.concat([p[i] for p in parts]) if parts else pl.DataFrame() for i in range(3)]


class ForwardReturnInputs:
    """The digest of the prices ``forward_returns`` reads for a schedule: the rows dated on or
    before its last date, and which of the tickers priced by then have a price after it (that
    tells only that a ticker is alive at an earlier date). A week of new prices after the last
    rebalance date changes neither, so the diagnostics are kept until a new date is scheduled.
    """

    COLUMNS = ("ticker", "date", "adj_close")

    def __init__(self, read) -> None:
        self.cumulative = read.cumulative_hashes("curated.prices", "date", self.COLUMNS)
        self.ranges = read.date_ranges("curated.prices", "ticker", "date")

    def digest(self, dates: list) -> str:
        if not dates:
            return "no dates"
        last = max(dates)
        through = hashes_before(self.cumulative, [last + timedelta(days=1)])
        later = self.ranges.filter((pl.col("first") <= last) & (pl.col("last") > last))
        return digest(through[last + timedelta(days=1)], later["key"].sort().to_list())


def diagnostics_digests(
    read, sched: pl.DataFrame, frequency: str, scored: dict, min_names: int
) -> pl.DataFrame:
    """Each diagnosed factor's and scored strategy's input digest: the digests of the factor
    values (on the diagnosed schedule) or of the strategy's scores, the prices (forward
    returns), the schedule, ``min_names`` and the code. The factors share one digest."""
    code = code_version(diagnostics_module, tables_module)
    common = (code, min_names)
    dates = _schedule(sched, frequency)
    labels = ForwardReturnInputs(read)
    values = read("factors.values_inputs").filter(pl.col("rebalance_date").is_in(dates))
    factors = digest(*common, labels.digest(dates), dates, sorted(values.iter_rows()))
    scores = digest_map(read("factors.scores_inputs"))
    parts = {}
    for n, s in scored.items():
        own = _schedule(sched, s.rebalance)
        parts[f"strategy:{n}"] = (*common, labels.digest(own), own, dates, scores.get(n))
    frame = strategy_digests(parts).rename({"strategy": "factor"})
    return pl.concat(
        [pl.DataFrame({"factor": list(DIAGNOSED), "digest": [factors] * len(DIAGNOSED)}), frame]
    )


def luck_digests(read, specs: dict) -> pl.DataFrame:
    """Each factor strategy's luck input digest (see :data:`LUCK`)."""
    code = code_version(luck_module, tables_module, metrics_module)
    prices = read.content_hash("curated.prices")
    sched = read("factors.rebalance_dates")
    scores = digest_map(read("factors.scores_inputs"))
    weights = digest_map(read("portfolio.target_weights_inputs"))
    daily = digest_map(read("backtest.daily_inputs"))
    return strategy_digests(
        {
            n: (
                code,
                spec_digest(s),
                N_RANDOM_PORTFOLIOS,
                SEED,
                prices,
                _schedule(sched, s.rebalance),
                scores.get(n),
                weights.get(n),
                daily.get(n),
            )
            for n, s in specs.items()
        }
    )


def _luck_rows(context, read, specs: dict) -> tuple[pl.DataFrame, pl.DataFrame]:
    """research.luck rows and the random portfolios of each strategy in ``specs``."""
    rows: list[dict] = []
    random = [pl.DataFrame(schema=RANDOM_SCHEMA)]
    if not specs:
        return pl.DataFrame(rows, schema=LUCK_SCHEMA), random[0]
    prices = read("curated.prices", columns=["ticker", "date", "adj_close"])
    scores = read("factors.scores", filters={"strategy": sorted(specs)})
    weights = read("portfolio.target_weights", filters={"strategy": sorted(specs)})
    daily = read("backtest.daily", columns=["strategy", "date", "portfolio_return"])
    sched = read("factors.rebalance_dates")
    fwd_by_freq: dict[str, pl.DataFrame] = {}
    for name, spec in specs.items():
        assert spec.portfolio is not None
        eligible = scores.filter(
            (pl.col("strategy") == name) & pl.col("eligible") & pl.col("rank").is_not_null()
        ).select("rebalance_date", "ticker", "sector")
        w = weights.filter(pl.col("strategy") == name)
        if eligible.is_empty() or w.is_empty():
            context.log.warning(f"{name}: no eligible names or weights; no luck baseline")
            continue
        if spec.rebalance not in fwd_by_freq:
            fwd_by_freq[spec.rebalance] = forward_returns(prices, _schedule(sched, spec.rebalance))
        own_daily = daily.filter(pl.col("strategy") == name).sort("date")
        try:
            row, rand = luck_report(
                name,
                eligible,
                w,
                fwd_by_freq[spec.rebalance],
                spec.portfolio.top_n,
                spec.portfolio.max_sector_weight,
                PERIODS_PER_YEAR[spec.rebalance],
                daily_returns=own_daily["portfolio_return"].to_list(),
                n_portfolios=N_RANDOM_PORTFOLIOS,
                seed=SEED,
            )
        except ValueError as exc:
            context.log.warning(f"{name}: no luck baseline: {exc}")
            continue
        rows.append(row)
        columns = [c for c in RANDOM_SCHEMA if c != "strategy"]
        random.append(rand.select(pl.lit(name).alias("strategy"), *columns).cast(RANDOM_SCHEMA))
    return pl.DataFrame(rows, schema=LUCK_SCHEMA), pl.concat(random, how="vertical_relaxed")


@dg.multi_asset(
    name="research__luck",
    specs=[
        table_spec(
            "research.luck",
            "Each factor strategy's Sharpe/CAGR percentile among random portfolios, oracle "
            "bound, PSR.",
            GROUP,
            LUCK_READS.deps,
        ),
        table_spec(
            RANDOM_PORTFOLIOS,
            "Per factor strategy: the random portfolios research.luck ranks it among (same "
            "size and sector cap, seeded), each one's periods, CAGR and Sharpe.",
            GROUP,
            [dg.AssetKey(["research", "luck"]), *LUCK_READS.deps],
        ),
        LUCK.spec(GROUP, LUCK_READS.deps),
    ],
    pool="warehouse",
)
def research_luck(
    context: dg.AssetExecutionContext, market: MarketDataResource, warehouse: WarehouseResource
):
    """Each factor strategy's Sharpe/CAGR percentile among random portfolios, oracle bound, PSR."""
    read = LUCK_READS.reader(warehouse.read_only())
    specs = {n: s for n, s in runnable_strategies(market, warehouse).items() if s.kind == "factor"}
    reuse = LUCK.plan(warehouse, market, luck_digests(read, specs))
    todo = set(reuse.computed_values("strategy"))
    computed, random = _luck_rows(context, read, {n: s for n, s in specs.items() if n in todo})
    wh = warehouse.get()
    LUCK.write_tables(wh, market, reuse, {"research.luck": computed, RANDOM_PORTFOLIOS: random})
    # the page shows every strategy's stored rows, kept and recomputed alike
    table = wh.read_table("research.luck").sort("strategy")
    portfolios = wh.read_table(RANDOM_PORTFOLIOS)
    extra = {}
    if table.height:
        by_strategy = {
            n: portfolios.filter(pl.col("strategy") == n).sort("portfolio_id")
            for n in table["strategy"]
        }
        extra["luck_chart"] = dg.MetadataValue.md(
            plots.md_image(luck_png(table, by_strategy), "strategy Sharpe among random portfolios")
        )
    yield dg.MaterializeResult(
        asset_key=["research", "luck"],
        metadata=table_metadata(
            "research.luck",
            table,
            luck=dg.MetadataValue.md(markdown_table(table, max_rows=20)),
            rows_recomputed=computed.height,
            **extra,
            **reuse_metadata(reuse),
        ),
    )
    yield dg.MaterializeResult(
        asset_key=RANDOM_PORTFOLIOS.split("."),
        metadata=table_metadata(RANDOM_PORTFOLIOS, portfolios),
    )
    yield dg.MaterializeResult(
        asset_key=LUCK.digests.split("."),
        metadata={**table_metadata(LUCK.digests, reuse.current), **reuse_metadata(reuse)},
    )


SIGNAL_COUNT_READS = reads("factors.signal_events", "curated.prices")


@dg.asset(
    key=["research", "signal_counts"],
    deps=SIGNAL_COUNT_READS.deps,
    group_name=GROUP,
    kinds=KINDS,
    pool="warehouse",
)
def research_signal_counts(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Per signal strategy and year: entries, exits, tickers entered, rate per 100 ticker-years."""
    read = SIGNAL_COUNT_READS.reader(warehouse.read_only())
    table = signal_counts(
        read("factors.signal_events"), read("curated.prices", columns=["ticker", "date"])
    )
    warehouse.get().replace_table("research.signal_counts", table)
    totals = (
        table.group_by("strategy")
        .agg(pl.col("entries").sum(), pl.col("exits").sum(), pl.col("ticker_years").sum())
        .with_columns(
            (100.0 * pl.col("entries") / pl.col("ticker_years")).alias(
                "entries_per_100_ticker_years"
            )
        )
        .sort("strategy")
    )
    return dg.MaterializeResult(
        metadata=table_metadata(
            "research.signal_counts",
            table,
            totals=dg.MetadataValue.md(markdown_table(totals, max_rows=20)),
        )
    )


research_assets = [factor_diagnostics_assets, research_luck, research_signal_counts]

"""The benchmark return series every backtest is compared with (``backtest.benchmarks``)."""

import sys

import dagster as dg
import polars as pl

import quant_pipeline.core.backtest.benchmark_returns as benchmark_returns_module
from quant_pipeline.core.backtest.benchmark_returns import (
    CAP_WEIGHT,
    EQUAL_WEIGHT,
    benchmark_table,
    ticker_benchmark,
    universe_benchmarks,
)
from quant_pipeline.core.backtest.reference_engine import BacktestInputError
from quant_pipeline.core.data.share_basis import SHARE_BASIS_TABLE
from quant_pipeline.core.factors.values import profile_shares
from quant_pipeline.core.reporting import backtest_charts as plots
from quant_pipeline.defs.incremental import (
    Incremental,
    code_version,
    reuse_metadata,
    strategy_digests,
)
from quant_pipeline.defs.metadata import markdown_table, table_metadata
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.defs.strategies import selected_strategies
from quant_pipeline.defs.tables import reads, table_spec

GROUP = "backtest"
KINDS = {"duckdb", "polars"}
BENCHMARK_READS = reads(
    "curated.prices",
    "curated.membership",
    "curated.fundamentals",
    "curated.securities",
    SHARE_BASIS_TABLE,
)


class BenchmarksConfig(dg.Config):
    """Which benchmarks to compute and which one ``backtest.daily`` compares with.

    ``primary``: ``equal_weight``, ``cap_weight`` or a ticker of the data (e.g. ``SPY``).
    ``tickers``: more tickers to store as benchmarks (their alpha, beta, tracking error and
    information ratio land in ``backtest.relative_metrics``); empty = the ``market`` resource's
    ``benchmark_tickers`` (default SPY, IWM). A ticker without returns in curated.prices is a
    warning naming it (a missing primary falls back to ``equal_weight``), not a failure.
    """

    primary: str = EQUAL_WEIGHT
    tickers: list[str] = []


def _shares(fundamentals: pl.DataFrame, securities: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Point-in-time shares from the fundamentals; the first profile's shares on file
    (:func:`profile_shares`, known 'since always', a lookahead) only for tickers without any.
    Returns the frame and that count."""
    reported = fundamentals.select(
        "ticker",
        pl.col("available_at").cast(pl.Date),
        "shares_outstanding",
        pl.col("period_end").cast(pl.Date),
    ).filter(pl.col("shares_outstanding").is_not_null())
    profile = securities.select(
        "ticker",
        pl.lit(None, dtype=pl.Date).alias("available_at"),
        profile_shares(securities.columns).cast(pl.Float64).alias("shares_outstanding"),
        pl.lit(None, dtype=pl.Date).alias("period_end"),
    ).filter(
        pl.col("shares_outstanding").is_not_null()
        & ~pl.col("ticker").is_in(reported["ticker"].unique().implode())
    )
    return pl.concat([reported, profile], how="vertical_relaxed"), profile.height


def ticker_series(
    context: dg.AssetExecutionContext, prices: pl.DataFrame, tickers: list[str]
) -> tuple[dict[str, pl.DataFrame], list[str]]:
    """The return series of each benchmark ticker found in ``prices``, and the ones missing
    (not in the prices, or no daily return), each logged as a warning naming it."""
    series: dict[str, pl.DataFrame] = {}
    missing: list[str] = []
    present = set(prices["ticker"].unique())
    for ticker in tickers:
        if ticker not in present:
            missing.append(ticker)
            context.log.warning(
                f"benchmark {ticker!r} left out: not in curated.prices (add it to the universe "
                "or pick another)"
            )
            continue
        try:
            found = ticker_benchmark(prices, ticker)
        except BacktestInputError as exc:
            missing.append(ticker)
            context.log.warning(f"benchmark {ticker!r} left out: {exc}")
            continue
        if found.is_empty():
            missing.append(ticker)
            context.log.warning(f"benchmark {ticker!r} left out: no daily return in curated.prices")
            continue
        series[ticker] = found
    return series, missing


BENCHMARKS = Incremental(
    "backtest.benchmarks",
    ("benchmark",),
    "Per benchmark: the digest of what its returns were computed from (the curated tables it "
    "reads, the primary asked for, the code); unchanged = kept.",
)


def benchmark_digests(read, wanted: list[str], primary: str) -> pl.DataFrame:
    """Each wanted benchmark's input digest: the prices (and the primary asked for: it sets
    ``is_primary``) for all; membership for the universe ones; shares for the cap-weighted."""
    hashes = {t: read.content_hash(t) for t in BENCHMARK_READS.tables}
    code = code_version(benchmark_returns_module, sys.modules[__name__])
    common = (code, primary, hashes["curated.prices"])
    universe = (hashes["curated.membership"],)
    shares = tuple(hashes[t] for t in BENCHMARK_READS.tables if t != "curated.prices")
    parts = {EQUAL_WEIGHT: (*common, *universe), CAP_WEIGHT: (*common, *shares)}
    parts.update({t: common for t in wanted if t not in parts})
    return strategy_digests(parts).rename({"strategy": "benchmark"})


def _series(
    context: dg.AssetExecutionContext, read, todo: list[str], shares: pl.DataFrame
) -> dict[str, pl.DataFrame]:
    """The return series of the benchmarks in ``todo`` (tickers without returns are logged and
    left out); ``shares``: what the cap-weighted one weighs by (:func:`_shares`)."""
    if not todo:
        return {}
    membership = read("curated.membership")
    members = membership if membership.height else None
    if members is not None and "universe" in members.columns and members["universe"].n_unique() > 1:
        raise dg.Failure(
            f"curated.membership holds several universes {members['universe'].unique().to_list()}"
        )
    series: dict[str, pl.DataFrame] = {}
    tickers = [t for t in todo if t not in (EQUAL_WEIGHT, CAP_WEIGHT)]
    if EQUAL_WEIGHT in todo or CAP_WEIGHT in todo:
        # the universe benchmarks from the prices in ticker batches: never every price at once
        columns = ["ticker", "date", "close", "daily_return"]
        basis = read(SHARE_BASIS_TABLE)
        with read.batches("curated.prices", columns) as batches:
            series.update(
                universe_benchmarks(
                    batches,
                    shares if CAP_WEIGHT in todo else None,
                    membership=members,
                    share_basis=basis,
                    equal_weight=EQUAL_WEIGHT in todo,
                )
            )
    if tickers:
        prices = read(
            "curated.prices",
            columns=["ticker", "date", "daily_return"],
            filters={"ticker": tickers},
        )
        found, _ = ticker_series(context, prices, tickers)
        series.update(found)
    return series


@dg.multi_asset(
    name="backtest__benchmarks",
    specs=[
        table_spec(
            "backtest.benchmarks",
            "Benchmark daily returns: equal-weight and cap-weighted universe, and chosen tickers.",
            GROUP,
            BENCHMARK_READS.deps,
        ),
        BENCHMARKS.spec(GROUP, BENCHMARK_READS.deps),
    ],
    pool="warehouse",
)
def benchmarks(
    context: dg.AssetExecutionContext,
    config: BenchmarksConfig,
    market: MarketDataResource,
    warehouse: WarehouseResource,
):
    """Benchmark daily returns: equal-weight and cap-weighted universe, and chosen tickers."""
    read = BENCHMARK_READS.reader(warehouse.read_only())
    # plus the tickers strategies name as their benchmark (e.g. QVAL), kept when the data has them
    named = sorted({s.benchmark for s in selected_strategies(market).values() if s.benchmark})
    wanted = list(
        dict.fromkeys(
            [
                EQUAL_WEIGHT,
                CAP_WEIGHT,
                *(config.tickers or market.benchmark_tickers),
                config.primary,
                *named,
            ]
        )
    )
    reuse = BENCHMARKS.plan(warehouse, market, benchmark_digests(read, wanted, config.primary))
    todo = reuse.computed_values("benchmark")
    shares, from_profile = _shares(
        read(
            "curated.fundamentals",
            columns=["ticker", "period_end", "available_at", "shares_outstanding"],
        ),
        read("curated.securities"),
    )
    series = _series(context, read, todo, shares)
    stored = set()
    if not reuse.kept.is_empty():
        stored = set(
            warehouse.read_only()
            .read_table("backtest.benchmarks", ["benchmark"])["benchmark"]
            .unique()
        )
    has_returns = set(series) | (stored & set(reuse.kept["benchmark"]))
    primary = config.primary if config.primary in has_returns else EQUAL_WEIGHT
    if primary != config.primary:
        context.log.warning(f"primary benchmark {config.primary!r} missing: using {primary!r}")
    computed = benchmark_table(series).with_columns(
        (pl.col("benchmark") == primary).alias("is_primary")
    )
    wh = warehouse.get()
    BENCHMARKS.write(wh, market, reuse, computed, "benchmark", wanted)
    table = wh.read_table("backtest.benchmarks")
    missing = [t for t in wanted if t not in has_returns]
    summary = table.group_by("benchmark").agg(
        pl.col("date").min().alias("first"),
        pl.col("date").max().alias("last"),
        pl.len().alias("days"),
        ((1 + pl.col("return")).product() - 1).alias("total_return"),
        pl.col("is_primary").first(),
    )
    curves = (
        table.sort("date")
        .with_columns((1 + pl.col("return")).cum_prod().over("benchmark").alias("equity"))
        .filter(pl.col("benchmark").is_in([EQUAL_WEIGHT, CAP_WEIGHT, primary]))
    )
    yield dg.MaterializeResult(
        asset_key=["backtest", "benchmarks"],
        metadata={
            **table_metadata("backtest.benchmarks", table, rows_recomputed=computed.height),
            "primary": primary,
            "missing_benchmarks": dg.MetadataValue.json(missing),
            "benchmarks": dg.MetadataValue.md(markdown_table(summary.sort("benchmark"))),
            "cap_weight_tickers_with_profile_shares": from_profile,
            "equity": dg.MetadataValue.md(
                plots.md_image(plots.benchmarks_png(curves), "benchmark equity")
            ),
            **reuse_metadata(reuse),
        },
    )
    yield dg.MaterializeResult(
        asset_key=BENCHMARKS.digests.split("."),
        metadata={**table_metadata(BENCHMARKS.digests, reuse.current), **reuse_metadata(reuse)},
    )


benchmark_assets = [benchmarks]

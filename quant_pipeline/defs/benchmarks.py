"""The benchmark return series every backtest is compared with (``backtest.benchmarks``)."""

import dagster as dg
import polars as pl

from quant_pipeline.core.backtest.benchmark_returns import (
    CAP_WEIGHT,
    EQUAL_WEIGHT,
    benchmark_table,
    cap_weighted_benchmark,
    equal_weight_benchmark,
    ticker_benchmark,
)
from quant_pipeline.core.backtest.reference_engine import BacktestInputError
from quant_pipeline.core.data.share_basis import SHARE_BASIS_TABLE
from quant_pipeline.core.reporting import backtest_charts as plots
from quant_pipeline.defs.metadata import markdown_table, table_metadata
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.defs.strategies import selected_strategies
from quant_pipeline.defs.tables import reads

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
    """Point-in-time shares from the fundamentals; the current profile's shares (known 'since
    always', a lookahead) only for tickers without any. Returns the frame and that count."""
    reported = fundamentals.select(
        "ticker",
        pl.col("available_at").cast(pl.Date),
        "shares_outstanding",
        pl.col("period_end").cast(pl.Date),
    ).filter(pl.col("shares_outstanding").is_not_null())
    profile = securities.select(
        "ticker",
        pl.lit(None, dtype=pl.Date).alias("available_at"),
        pl.col("shares_outstanding").cast(pl.Float64),
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
    for ticker in tickers:
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


@dg.asset(
    key=["backtest", "benchmarks"],
    deps=BENCHMARK_READS.deps,
    group_name=GROUP,
    kinds=KINDS,
    pool="warehouse",
)
def benchmarks(
    context: dg.AssetExecutionContext,
    config: BenchmarksConfig,
    market: MarketDataResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    """Benchmark daily returns: equal-weight and cap-weighted universe, and chosen tickers."""
    read = BENCHMARK_READS.reader(warehouse.read_only())
    prices = read("curated.prices", columns=["ticker", "date", "close", "daily_return"])
    membership = read("curated.membership")
    members = membership if membership.height else None
    if members is not None and "universe" in members.columns and members["universe"].n_unique() > 1:
        raise dg.Failure(
            f"curated.membership holds several universes {members['universe'].unique().to_list()}"
        )
    shares, from_profile = _shares(
        read(
            "curated.fundamentals",
            columns=["ticker", "period_end", "available_at", "shares_outstanding"],
        ),
        read("curated.securities", columns=["ticker", "shares_outstanding"]),
    )
    series = {
        EQUAL_WEIGHT: equal_weight_benchmark(prices, membership=members),
        CAP_WEIGHT: cap_weighted_benchmark(
            prices, shares, membership=members, share_basis=read(SHARE_BASIS_TABLE)
        ),
    }
    # plus the tickers strategies name as their benchmark (e.g. QVAL), kept when the data has them
    named = sorted({s.benchmark for s in selected_strategies(market).values() if s.benchmark})
    wanted = dict.fromkeys([*(config.tickers or market.benchmark_tickers), config.primary, *named])
    found, missing = ticker_series(context, prices, [t for t in wanted if t not in series])
    series.update(found)
    primary = config.primary if config.primary in series else EQUAL_WEIGHT
    if primary != config.primary:
        context.log.warning(f"primary benchmark {config.primary!r} missing: using {primary!r}")
    table = benchmark_table(series).with_columns(
        (pl.col("benchmark") == primary).alias("is_primary")
    )
    warehouse.get().replace_table("backtest.benchmarks", table)
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
    return dg.MaterializeResult(
        metadata={
            **table_metadata("backtest.benchmarks", table),
            "primary": primary,
            "missing_benchmarks": dg.MetadataValue.json(missing),
            "benchmarks": dg.MetadataValue.md(markdown_table(summary.sort("benchmark"))),
            "cap_weight_tickers_with_profile_shares": from_profile,
            "equity": dg.MetadataValue.md(
                plots.md_image(plots.benchmarks_png(curves), "benchmark equity")
            ),
        }
    )


benchmark_assets = [benchmarks]

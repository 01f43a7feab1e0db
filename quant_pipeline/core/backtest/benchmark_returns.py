"""Benchmark return series: equal-weight universe, cap-weighted universe, or one ticker.

Pure polars. Every function returns ``date, benchmark_return`` (one row per date, sorted), the frame
``core.backtest.reference_engine.run_backtest`` and ``core.backtest.share_simulation.simulate`` take
as ``benchmark``, and :func:`benchmark_table` stacks several into ``backtest.benchmarks`` (``date,
benchmark, return``).

Day t's benchmark return uses only returns dated t and weights known at the close of the ticker's
previous trading day (prices) and strictly before t (shares outstanding).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import polars as pl

from quant_pipeline.core.backtest.reference_engine import (
    BacktestInputError,
    equal_weight_benchmark,
    members_only,
)
from quant_pipeline.core.data.frames import require_columns

EQUAL_WEIGHT = "equal_weight"
CAP_WEIGHT = "cap_weight"
BENCHMARKS_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date,
    "benchmark": pl.String,
    "return": pl.Float64,
}
_ALWAYS = date(1900, 1, 1)

__all__ = [
    "BENCHMARKS_SCHEMA",
    "CAP_WEIGHT",
    "EQUAL_WEIGHT",
    "benchmark_series",
    "benchmark_table",
    "cap_weighted_benchmark",
    "equal_weight_benchmark",
    "ticker_benchmark",
]


def cap_weighted_benchmark(
    prices: pl.DataFrame,
    shares: pl.DataFrame,
    membership: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Market-cap-weighted daily return of the universe, point in time.

    ``prices``: curated.prices ``ticker, date, close, daily_return``. ``shares``: ``ticker,
    available_at, shares_outstanding`` (e.g. curated.fundamentals; a null ``available_at`` means
    known since always, for a profile fallback). ``membership``: optional, as in
    :func:`core.backtest.reference_engine.equal_weight_benchmark`.

    ``r_t = sum_i cap_i r_i,t / sum_i cap_i`` over tickers with a return on t, where ``cap_i =
    close_i(previous row) * shares_i`` with the latest shares whose ``available_at`` is before t.
    Tickers without a previous close or without shares yet do not count that day. Caveat: close
    and reported shares are both as traded, so between a split and the next report a ticker's cap
    is off by the split ratio (the same convention as ``factors.values.market_cap``).

    Returns ``date, benchmark_return`` for dates where at least one ticker counts.
    """
    require_columns(
        prices, ("ticker", "date", "close", "daily_return"), "prices", BacktestInputError
    )
    require_columns(
        shares, ("ticker", "available_at", "shares_outstanding"), "shares", BacktestInputError
    )
    px = (
        prices.select(
            pl.col("ticker").cast(pl.String),
            pl.col("date").cast(pl.Date),
            pl.col("close").cast(pl.Float64),
            pl.col("daily_return").cast(pl.Float64),
        )
        .sort("ticker", "date")
        .with_columns(pl.col("close").shift(1).over("ticker").alias("prev_close"))
        .filter(
            pl.col("daily_return").is_not_null()
            & pl.col("daily_return").is_finite()
            & (pl.col("prev_close") > 0)
        )
    )
    px = members_only(px, membership)
    sh = (
        shares.select(
            pl.col("ticker").cast(pl.String),
            pl.col("available_at").cast(pl.Date).fill_null(_ALWAYS),
            pl.col("shares_outstanding").cast(pl.Float64),
        )
        .filter(pl.col("shares_outstanding") > 0)
        # Several rows known the same day: the last one given wins.
        .unique(subset=["ticker", "available_at"], keep="last", maintain_order=True)
        .sort("available_at")
    )
    weighted = (
        px.sort("date")
        .join_asof(
            sh,
            left_on="date",
            right_on="available_at",
            by="ticker",
            strategy="backward",
            allow_exact_matches=False,
            check_sortedness=False,
        )
        .filter(pl.col("shares_outstanding").is_not_null())
        .with_columns((pl.col("prev_close") * pl.col("shares_outstanding")).alias("cap"))
    )
    return (
        weighted.group_by("date")
        .agg(
            ((pl.col("cap") * pl.col("daily_return")).sum() / pl.col("cap").sum()).alias(
                "benchmark_return"
            )
        )
        .sort("date")
        .select(pl.col("date").cast(pl.Date), pl.col("benchmark_return").cast(pl.Float64))
    )


def ticker_benchmark(prices: pl.DataFrame, ticker: str) -> pl.DataFrame:
    """The daily total return of one ticker in the data (e.g. 'SPY', 'IWM') as a benchmark.

    ``prices``: curated.prices ``ticker, date, daily_return``. Returns ``date,
    benchmark_return`` for the ticker's dates with a return (its first row has none). Raises
    ``BacktestInputError`` naming the ticker when the data has no row for it.
    """
    require_columns(prices, ("ticker", "date", "daily_return"), "prices", BacktestInputError)
    rows = prices.filter(pl.col("ticker") == ticker)
    if rows.is_empty():
        raise BacktestInputError(
            f"benchmark ticker {ticker!r} is not in the prices "
            f"({prices['ticker'].n_unique()} tickers): add it to the universe or pick another"
        )
    return (
        rows.filter(pl.col("daily_return").is_not_null() & pl.col("daily_return").is_finite())
        .select(
            pl.col("date").cast(pl.Date),
            pl.col("daily_return").cast(pl.Float64).alias("benchmark_return"),
        )
        .unique(subset=["date"], keep="first")
        .sort("date")
    )


def benchmark_table(series: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
    """Stack named ``date, benchmark_return`` frames into ``date, benchmark, return`` (long),
    sorted by benchmark then date."""
    frames = [
        s.select(
            pl.col("date").cast(pl.Date),
            pl.lit(name, dtype=pl.String).alias("benchmark"),
            pl.col("benchmark_return").cast(pl.Float64).alias("return"),
        )
        for name, s in series.items()
    ]
    if not frames:
        return pl.DataFrame(schema=BENCHMARKS_SCHEMA)
    return pl.concat(frames).sort("benchmark", "date")


def benchmark_series(table: pl.DataFrame, name: str) -> pl.DataFrame:
    """One benchmark of ``backtest.benchmarks`` as ``date, benchmark_return``.

    Raises ``BacktestInputError`` listing the benchmarks present when ``name`` is not one.
    """
    require_columns(table, tuple(BENCHMARKS_SCHEMA), "benchmarks", BacktestInputError)
    part = table.filter(pl.col("benchmark") == name)
    if part.is_empty():
        raise BacktestInputError(
            f"benchmark {name!r} is not in backtest.benchmarks; available: "
            f"{sorted(table['benchmark'].unique().to_list())}"
        )
    return part.select("date", pl.col("return").alias("benchmark_return")).sort("date")

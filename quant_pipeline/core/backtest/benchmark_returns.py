"""Benchmark return series: equal-weight universe, cap-weighted universe, or one ticker.

Pure polars. Every function returns ``date, benchmark_return`` (one row per date, sorted), the frame
``core.backtest.reference_engine.run_backtest`` and ``core.backtest.share_simulation.simulate`` take
as ``benchmark``, and :func:`benchmark_table` stacks several into ``backtest.benchmarks`` (``date,
benchmark, return``).

Day t's benchmark return uses only returns dated t and weights known at the close of the ticker's
previous trading day (prices) and strictly before t (shares outstanding).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date

import polars as pl

from quant_pipeline.core.backtest.reference_engine import (
    BacktestInputError,
    equal_weight_benchmark,
    members_only,
)
from quant_pipeline.core.data.frames import require_columns
from quant_pipeline.core.data.share_basis import share_multiplier

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
    "universe_benchmarks",
]


def cap_weighted_benchmark(
    prices: pl.DataFrame,
    shares: pl.DataFrame,
    membership: pl.DataFrame | None = None,
    share_basis: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Market-cap-weighted daily return of the universe, point in time.

    ``prices``: curated.prices ``ticker, date, close, daily_return``. ``shares``: ``ticker,
    available_at, shares_outstanding`` (e.g. curated.fundamentals; a null ``available_at`` means
    known since always, for a profile fallback). ``membership``: optional, as in
    :func:`core.backtest.reference_engine.equal_weight_benchmark`.

    ``r_t = sum_i cap_i r_i,t / sum_i cap_i`` over tickers with a return on t, where ``cap_i =
    close_i(previous row) * shares_i`` with the latest shares whose ``available_at`` is before t.
    Tickers without a previous close or without shares yet do not count that day. With
    ``share_basis`` (curated.share_basis_events) and a ``period_end`` column in ``shares`` (the
    period the count was reported for; null for a profile count, left as is), each count is put
    on the basis of the previous close first
    (:func:`quant_pipeline.core.data.share_basis.share_multiplier`, price date = the previous
    row's date), as ``factors.values.market_cap`` is; without it, a split between a report and
    the close (or a price file restated for later splits) divides the cap by the split ratio.

    Returns ``date, benchmark_return`` for dates where at least one ticker counts.
    """
    require_columns(
        prices, ("ticker", "date", "close", "daily_return"), "prices", BacktestInputError
    )
    require_columns(
        shares, ("ticker", "available_at", "shares_outstanding"), "shares", BacktestInputError
    )
    known = _shares_on_basis(shares, share_basis)
    return _cap_weighted_returns(_cap_weighted_rows(prices, known, membership, share_basis))


def _shares_on_basis(shares: pl.DataFrame, share_basis: pl.DataFrame | None) -> pl.DataFrame:
    """:func:`_known_shares` of ``shares``, with their ``period_end`` when ``share_basis`` has
    events to put the counts on the close's basis (then required)."""
    rebase = share_basis is not None and share_basis.height > 0
    if rebase:
        require_columns(shares, ("period_end",), "shares", BacktestInputError)
    return _known_shares(shares, rebase)


def _cap_weighted_rows(
    prices: pl.DataFrame,
    known: pl.DataFrame,
    membership: pl.DataFrame | None,
    share_basis: pl.DataFrame | None,
) -> pl.DataFrame:
    """``date, cap, daily_return``: the rows that count in :func:`cap_weighted_benchmark` (one
    per ticker and day; every step is per ticker, so any batch of whole tickers gives its own
    rows). ``known``: :func:`_shares_on_basis`."""
    px = members_only(_returns_with_prior_close(prices), membership)
    rebase = share_basis is not None and share_basis.height > 0
    weighted = (
        px.sort("date")
        .join_asof(
            known,
            left_on="date",
            right_on="available_at",
            by="ticker",
            strategy="backward",
            allow_exact_matches=False,
            check_sortedness=False,
        )
        .filter(pl.col("shares_outstanding").is_not_null())
    )
    if rebase:
        factor = share_multiplier(
            weighted, share_basis, period="period_end", price_date="prev_date"
        )
        weighted = weighted.with_columns(pl.col("shares_outstanding") * factor)
    return weighted.select(
        "date", (pl.col("prev_close") * pl.col("shares_outstanding")).alias("cap"), "daily_return"
    )


def _cap_weighted_returns(rows: pl.DataFrame) -> pl.DataFrame:
    """``date, benchmark_return`` = sum(cap * r) / sum(cap) per date of ``rows``."""
    return (
        rows.group_by("date")
        .agg(
            ((pl.col("cap") * pl.col("daily_return")).sum() / pl.col("cap").sum()).alias(
                "benchmark_return"
            )
        )
        .sort("date")
        .select(pl.col("date").cast(pl.Date), pl.col("benchmark_return").cast(pl.Float64))
    )


def universe_benchmarks(
    batches: Iterable[pl.DataFrame],
    shares: pl.DataFrame | None,
    membership: pl.DataFrame | None = None,
    share_basis: pl.DataFrame | None = None,
    equal_weight: bool = True,
) -> dict[str, pl.DataFrame]:
    """:data:`EQUAL_WEIGHT` (when ``equal_weight``) and :data:`CAP_WEIGHT` (when ``shares`` is
    given) series from curated.prices (ticker, date, close, daily_return) in batches that each
    hold whole tickers (``Warehouse.read_batches``), one pass over them: each batch gives only
    the rows that count (members' returns; caps and returns), and the mean and the cap-weighted
    sum are taken over all of them at the end, as :func:`equal_weight_benchmark` and
    :func:`cap_weighted_benchmark` take them over the whole prices frame (same definitions;
    the sums may differ from theirs in the last bit, as any other summation order would)."""
    known = None
    if shares is not None:
        require_columns(
            shares, ("ticker", "available_at", "shares_outstanding"), "shares", BacktestInputError
        )
        known = _shares_on_basis(shares, share_basis)  # once, not per batch
    needed = ("ticker", "date", "daily_return") + (("close",) if shares is not None else ())
    members, weighted = [], []
    for batch in batches:
        require_columns(batch, needed, "prices", BacktestInputError)
        if equal_weight:
            returns = batch.select("ticker", "date", "daily_return").filter(
                pl.col("daily_return").is_not_null() & pl.col("daily_return").is_not_nan()
            )
            members.append(
                members_only(returns, membership).select("ticker", "date", "daily_return")
            )
        if known is not None:
            weighted.append(_cap_weighted_rows(batch, known, membership, share_basis))
    if not members and not weighted and (equal_weight or known is not None):
        raise BacktestInputError(
            "universe_benchmarks: no price batch given (an empty prices table is one empty batch)"
        )
    series: dict[str, pl.DataFrame] = {}
    if equal_weight:
        series[EQUAL_WEIGHT] = equal_weight_benchmark(pl.concat(members))
    if known is not None:
        series[CAP_WEIGHT] = _cap_weighted_returns(pl.concat(weighted))
    return series


def _returns_with_prior_close(prices: pl.DataFrame) -> pl.DataFrame:
    """Rows with a finite return and a positive previous close (``prev_close``, ``prev_date``)."""
    return (
        prices.select(
            pl.col("ticker").cast(pl.String),
            pl.col("date").cast(pl.Date),
            pl.col("close").cast(pl.Float64),
            pl.col("daily_return").cast(pl.Float64),
        )
        .sort("ticker", "date")
        .with_columns(
            pl.col("close").shift(1).over("ticker").alias("prev_close"),
            pl.col("date").shift(1).over("ticker").alias("prev_date"),
        )
        .filter(
            pl.col("daily_return").is_not_null()
            & pl.col("daily_return").is_finite()
            & (pl.col("prev_close") > 0)
        )
    )


def _known_shares(shares: pl.DataFrame, with_period: bool) -> pl.DataFrame:
    """Positive share counts by ``available_at`` (null = since always); one per ticker and day."""
    period = pl.col("period_end") if with_period else pl.lit(None)
    return (
        shares.select(
            pl.col("ticker").cast(pl.String),
            pl.col("available_at").cast(pl.Date).fill_null(_ALWAYS),
            pl.col("shares_outstanding").cast(pl.Float64),
            period.cast(pl.Date).alias("period_end"),
        )
        .filter(pl.col("shares_outstanding") > 0)
        # Several rows known the same day: the last one given wins.
        .unique(subset=["ticker", "available_at"], keep="last", maintain_order=True)
        .sort("available_at")
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

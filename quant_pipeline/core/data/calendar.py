"""Trading calendar and rebalance dates, derived from the dates present in curated.prices.

The market calendar is whatever days have prices: no exchange calendar is consulted, so a
rebalance date is always a day on which the pipeline has data (design: "Rebalance date D = first
trading day (a date present in curated.prices) of each period").
"""

from __future__ import annotations

from datetime import date

import polars as pl

FREQUENCIES: tuple[str, ...] = ("monthly", "quarterly", "annual")
# Trading days in a year: what annualises daily returns (Sharpe, volatility, CAGR, cash interest)
# and what "one year" of daily rows means in a lookback (momentum, volatility, relative strength).
# The one definition in the package; quant_pipeline_tests/test_one_home.py rejects a literal 252.
TRADING_DAYS_PER_YEAR = 252


class CalendarError(ValueError):
    """A calendar input breaks a rule (unknown frequency, missing column)."""


def trading_days(prices: pl.DataFrame | pl.LazyFrame) -> pl.Series:
    """Sorted unique trading days (``pl.Date`` series named ``date``).

    Expects a frame with a ``date`` column (curated.prices: ticker, date, ...). Looks at every date.
    """
    if "date" not in prices.collect_schema().names():
        raise CalendarError("prices frame has no 'date' column; expected curated.prices")
    out = prices.lazy().select(pl.col("date").unique().sort()).collect()
    return out.get_column("date").drop_nulls()


def _period_key(frequency: str) -> pl.Expr:
    d = pl.col("date")
    if frequency == "monthly":
        return d.dt.year() * 100 + d.dt.month()
    if frequency == "quarterly":
        return d.dt.year() * 10 + d.dt.quarter()
    if frequency == "annual":
        return d.dt.year().cast(pl.Int32)
    raise CalendarError(f"frequency {frequency!r} is not one of {FREQUENCIES}")


def rebalance_dates(
    days: pl.Series,
    frequency: str,
    start: date | None = None,
    end: date | None = None,
) -> list[date]:
    """First trading day of every month, quarter or year present in ``days``, within [start, end].

    ``days`` is a series of trading days (see :func:`trading_days`); it need not be sorted.
    Every period present in ``days`` contributes its first trading day, including a first
    partial period (the first day of data is then a rebalance date). The dates are computed on the
    whole calendar first and then filtered to ``start <= D <= end``, so a ``start`` in the middle of
    a month never turns a mid-month day into a rebalance date.
    """
    if frequency not in FREQUENCIES:
        raise CalendarError(f"frequency {frequency!r} is not one of {FREQUENCIES}")
    frame = pl.DataFrame({"date": days.cast(pl.Date)}).drop_nulls().unique()
    out = (
        frame.group_by(_period_key(frequency).alias("period"))
        .agg(pl.col("date").min())
        .sort("date")
    )
    if start is not None:
        out = out.filter(pl.col("date") >= start)
    if end is not None:
        out = out.filter(pl.col("date") <= end)
    return out.get_column("date").to_list()


def previous_trading_day(days: pl.Series, d: date) -> date | None:
    """The last trading day strictly before ``d`` (None when ``d`` is on or before day one)."""
    before = days.filter(days < d)
    return None if before.is_empty() else before.max()  # type: ignore[return-value]

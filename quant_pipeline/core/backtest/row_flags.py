"""Warnings for a strategy row whose numbers cannot be read like the others'.

Pure polars. A strategy that never placed an order, that sat mostly in cash, or that closed too
few trades has a Sharpe ratio and a CAGR like any other, and a table that shows them side by side
without a word misleads. :func:`strategy_flags` names those cases per strategy; the comparison
table (``backtest.comparison``'s ``flags`` column, the CLI table) and each tear sheet show them.

Rules (thresholds are module constants, definitions in docs/metrics.md "Row flags"):

* ``never fired``: no order in the whole backtest (``orders`` of backtest.daily sums to 0).
* ``mostly cash``: average invested share (:func:`core.backtest.metrics.average_invested`)
  below ``MOSTLY_CASH_BELOW`` (0.5).
* ``too few trades``: fewer than ``MIN_CLOSED_TRADES`` (30) closed round trips (rows of
  backtest.trades with an exit date), the usual minimum sample for a mean and its standard
  error to mean anything (the central-limit rule of thumb).

A strategy with no share-based columns (a blend, whose orders and cash stay with its sleeves) is
not measured and gets no flag.
"""

from __future__ import annotations

import polars as pl

from quant_pipeline.core.backtest.metrics import MetricsInputError, average_invested
from quant_pipeline.core.data.frames import require_columns

MOSTLY_CASH_BELOW = 0.5
MIN_CLOSED_TRADES = 30
FLAGS_SCHEMA: dict[str, pl.DataType] = {"strategy": pl.String, "flags": pl.String}


def row_flags(daily: pl.DataFrame, closed_trades: int) -> list[str]:
    """The flags of one strategy: ``daily`` (``orders, cash, portfolio_value``, one strategy)
    and its number of closed trades. Empty when none applies or ``orders`` is all null."""
    require_columns(daily, ["orders", "cash", "portfolio_value"], "daily", MetricsInputError)
    if daily.height == 0 or daily["orders"].null_count() == daily.height:
        return []
    if int(daily["orders"].fill_null(0).sum()) == 0:
        return ["never fired: no order placed"]
    flags = []
    invested = average_invested(daily)
    if invested is not None and invested < MOSTLY_CASH_BELOW:
        flags.append(f"mostly cash: {invested:.0%} invested on average")
    if closed_trades < MIN_CLOSED_TRADES:
        flags.append(
            f"too few trades to judge: {closed_trades} closed (fewer than {MIN_CLOSED_TRADES})"
        )
    return flags


def strategy_flags(daily: pl.DataFrame, trades: pl.DataFrame) -> pl.DataFrame:
    """``strategy, flags`` (flags joined by '; ', null when none) for every strategy of
    ``daily`` (backtest.daily: strategy, orders, cash, portfolio_value; a strategy without the
    share-based columns gets null), counting closed trades in ``trades`` (backtest.trades:
    strategy, exit_date). Sorted by strategy."""
    require_columns(daily, ["strategy"], "backtest.daily", MetricsInputError)
    require_columns(trades, ["strategy", "exit_date"], "backtest.trades", MetricsInputError)
    closed = dict(
        trades.filter(pl.col("exit_date").is_not_null()).group_by("strategy").len().iter_rows()
    )
    rows = []
    share_based = {"orders", "cash", "portfolio_value"} <= set(daily.columns)
    for (name,), part in daily.sort("strategy").group_by("strategy", maintain_order=True):
        flags = row_flags(part, closed.get(name, 0)) if share_based else []
        rows.append((name, "; ".join(flags) if flags else None))
    return pl.DataFrame(rows, schema=FLAGS_SCHEMA, orient="row")


def with_skipped(comparison: pl.DataFrame, skipped: pl.DataFrame) -> pl.DataFrame:
    """The comparison table with a row for every strategy left out of the backtest.

    ``comparison``: ``strategy``, metric columns and ``flags`` (the benchmark row is
    ``'benchmark'``). ``skipped``: ``strategy, reason`` (why it has no backtest, e.g. no target
    weights: the signal never fired). Each such strategy gets null metrics and the flag
    ``never fired (not backtested): <reason>``, placed before the benchmark row; a strategy that
    already has a row is left as it is.
    """
    require_columns(comparison, ["strategy", "flags"], "backtest.comparison", MetricsInputError)
    require_columns(skipped, ["strategy", "reason"], "skipped strategies", MetricsInputError)
    new = skipped.filter(~pl.col("strategy").is_in(comparison["strategy"].implode())).select(
        "strategy",
        (pl.lit("never fired (not backtested): ") + pl.col("reason")).alias("flags"),
    )
    if new.is_empty():
        return comparison
    is_bench = pl.col("strategy") == "benchmark"
    return pl.concat(
        [comparison.filter(~is_bench), new, comparison.filter(is_bench)], how="diagonal_relaxed"
    ).select(comparison.columns)

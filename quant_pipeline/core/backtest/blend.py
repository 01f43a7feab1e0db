"""Blends (kind ``blend``): fixed weights on other strategies' daily returns, and who earned what.

A blend holds each sleeve (a strategy already backtested) as a fund. On its start date, the first
date on which every sleeve has a daily row, capital 1 is split by the target weights. Each day a
sleeve's value grows by its net daily return; after the close of every re-weighting date (first
trading day of each month / quarter / year, or every day) the values are reset to the target
weights of the blend's equity. Re-weighting between sleeves costs nothing here: sleeve returns are
already net of their own trading costs, and transfers between sleeves largely net out.

Attribution is exact and additive: with V_i(t-1) the value of sleeve i at the previous close,

    contribution_i = sum_t V_i(t-1) x r_i(t)      and      sum_i contribution_i = equity_T - 1,

i.e. each sleeve's profit in units of the starting capital.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from quant_pipeline.core.data.calendar import FREQUENCIES, rebalance_dates

DAILY_COLUMNS = (
    "strategy",
    "date",
    "portfolio_return",
    "benchmark_return",
    "equity",
    "benchmark_equity",
    "drawdown",
    "turnover",
    "costs",
)
ATTRIBUTION_SCHEMA: dict[str, pl.DataType] = {
    "strategy": pl.String(),
    "sleeve": pl.String(),
    "weight": pl.Float64(),
    "start_date": pl.Date(),
    "end_date": pl.Date(),
    "sleeve_return": pl.Float64(),
    "contribution": pl.Float64(),
    "blend_return": pl.Float64(),
}


class BlendInputError(ValueError):
    """The sleeves' daily returns cannot be blended (a sleeve is missing, no common dates)."""


def blend_returns(
    sleeves_daily: pl.DataFrame,
    weights: dict[str, float],
    rebalance: str = "monthly",
    benchmark: pl.DataFrame | None = None,
    name: str = "blend",
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Daily rows and attribution of a blend of ``weights`` (sleeve name -> weight, sum 1).

    ``sleeves_daily``: backtest.daily rows (strategy, date, portfolio_return[, turnover, costs])
    of at least the sleeves. ``rebalance``: ``daily`` or a calendar frequency. ``benchmark``:
    (date, benchmark_return); its first day in the blend counts as 0, like the backtest's.
    Dates looked at: only returns up to each day (the weights are fixed in advance).

    Returns (daily, attribution): ``daily`` in backtest.daily's columns, over the dates every
    sleeve has; turnover and costs are the sleeves' weighted by their value at the previous
    close. ``attribution``: one row per sleeve (weight, start_date, end_date, sleeve_return =
    compounded return over the blend's period, contribution, blend_return).
    """
    frame = _checked_sleeves(sleeves_daily, weights, rebalance, name)
    names = list(weights)
    dates, r, turnover_s, costs_s = _sleeve_matrices(frame, names, name)
    target = np.array([weights[n] for n in names])
    if rebalance == "daily":
        reset = np.ones(dates.len(), dtype=bool)
    else:
        reset = dates.is_in(pl.Series(rebalance_dates(dates, rebalance)).implode()).to_numpy()
    equity, turnover, costs, contribution = _walk_blend(r, turnover_s, costs_s, target, reset)
    daily = _blend_daily(name, dates, equity, turnover, costs, benchmark)
    sleeve_return = np.prod(1.0 + r[1:], axis=0) - 1.0
    attribution = pl.DataFrame(
        {
            "strategy": name,
            "sleeve": names,
            "weight": target,
            "start_date": dates[0],
            "end_date": dates[-1],
            "sleeve_return": sleeve_return,
            "contribution": contribution,
            "blend_return": equity[-1] - 1.0,
        },
        schema=ATTRIBUTION_SCHEMA,
    )
    return daily, attribution


def _checked_sleeves(
    sleeves_daily: pl.DataFrame, weights: dict[str, float], rebalance: str, name: str
) -> pl.DataFrame:
    """The daily rows of the blend's sleeves (turnover and costs 0 when absent), after checking
    the frequency, the weights and that every sleeve has rows."""
    if rebalance != "daily" and rebalance not in FREQUENCIES:
        raise BlendInputError(f"rebalance must be daily or one of {FREQUENCIES}, got {rebalance!r}")
    total = sum(weights.values())
    if not weights or abs(total - 1.0) > 1e-6 or min(weights.values()) <= 0:
        raise BlendInputError(f"weights must be positive and sum to 1, got {weights}")
    names = list(weights)
    have = set(sleeves_daily["strategy"].unique().to_list()) if sleeves_daily.height else set()
    missing = [n for n in names if n not in have]
    if missing:
        raise BlendInputError(f"{name}: no daily returns for sleeve(s) {missing}")
    frame = sleeves_daily.filter(pl.col("strategy").is_in(names))
    for col in ("turnover", "costs"):
        if col not in frame.columns:
            frame = frame.with_columns(pl.lit(0.0).alias(col))
    return frame


def _sleeve_matrices(
    frame: pl.DataFrame, names: list[str], name: str
) -> tuple[pl.Series, np.ndarray, np.ndarray, np.ndarray]:
    """The dates every sleeve has, and days x sleeves matrices of returns, turnover and costs."""

    def wide(col: str) -> pl.DataFrame:
        return frame.pivot(on="strategy", index="date", values=col, on_columns=names)

    returns = wide("portfolio_return").drop_nulls().sort("date")
    dates = returns["date"]
    if dates.len() < 2:
        raise BlendInputError(f"{name}: the sleeves {names} share fewer than 2 dates")
    turnover_s, costs_s = (
        returns.select("date")
        .join(wide(col), on="date", how="left")
        .select(pl.col(names).fill_null(0.0))
        .to_numpy()
        for col in ("turnover", "costs")
    )
    return dates, returns.select(names).to_numpy(), turnover_s, costs_s


def _walk_blend(
    r: np.ndarray,
    turnover_s: np.ndarray,
    costs_s: np.ndarray,
    target: np.ndarray,
    reset: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sleeve values day by day, reset to the target weights after each ``reset`` close:
    (equity, turnover, costs, contribution per sleeve)."""
    n = len(r)
    value = target.copy()  # bought at the first day's close: its own return is not earned
    contribution = np.zeros(len(target))
    equity = np.ones(n)
    turnover = np.zeros(n)
    costs = np.zeros(n)
    for t in range(1, n):
        share = value / value.sum()
        turnover[t] = share @ turnover_s[t]
        costs[t] = share @ costs_s[t]
        contribution += value * r[t]
        value = value * (1.0 + r[t])
        equity[t] = value.sum()
        if reset[t]:
            value = target * equity[t]
    return equity, turnover, costs, contribution


def _blend_daily(
    name: str,
    dates: pl.Series,
    equity: np.ndarray,
    turnover: np.ndarray,
    costs: np.ndarray,
    benchmark: pl.DataFrame | None,
) -> pl.DataFrame:
    """backtest.daily rows of the blend; the benchmark's first day in the blend counts as 0."""
    port = np.concatenate([[0.0], equity[1:] / equity[:-1] - 1.0])
    daily = pl.DataFrame(
        {
            "strategy": name,
            "date": dates,
            "portfolio_return": port,
            "equity": equity,
            "turnover": turnover,
            "costs": costs,
        }
    )
    bench = (
        benchmark.select(pl.col("date").cast(pl.Date), pl.col("benchmark_return").cast(pl.Float64))
        if benchmark is not None
        else pl.DataFrame(schema={"date": pl.Date, "benchmark_return": pl.Float64})
    )
    return (
        daily.join(bench, on="date", how="left")
        .with_columns(
            pl.when(pl.col("date") == dates[0])
            .then(0.0)
            .otherwise(pl.col("benchmark_return").fill_null(0.0))
            .alias("benchmark_return")
        )
        .with_columns(
            (1.0 + pl.col("benchmark_return")).cum_prod().alias("benchmark_equity"),
            (pl.col("equity") / pl.col("equity").cum_max() - 1.0).alias("drawdown"),
        )
        .select(DAILY_COLUMNS)
    )

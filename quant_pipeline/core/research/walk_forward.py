"""Walk-forward: choose a variant on a training window, hold it over the next test window, roll.

Windows are calendar years counted from the first date of the variants' daily returns T0:
test window k is [T0 + train_years + k·test_years, T0 + train_years + (k+1)·test_years) (the last
one cut at the data's end); its training window is [T0, test start) when ``expanding`` and
[test start − train_years, test start) when ``sliding``. On each training window the variant
with the best ``objective`` (ties: first variant name) is chosen; the stitched out-of-sample
curve chains the chosen variants' daily returns over their test windows. Each variant's
returns come from its own continuous backtest, so switching variants between windows costs
nothing here (the books differ; the trades to move between them are not charged).

Objectives over a window's daily returns are the project's metric functions
(``core.backtest.metrics``): ``sharpe_ratio``, ``total_return`` and ``cagr``. Pure polars; only
the training window's returns choose a variant, so nothing of the test window is seen.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from quant_pipeline.core.backtest import metrics
from quant_pipeline.core.data.frames import require_columns

METRIC_FUNCTIONS = {
    "sharpe_ratio": metrics.sharpe_ratio,
    "total_return": metrics.total_return,
    "cagr": metrics.cagr,
}
OBJECTIVES: tuple[str, ...] = ("sharpe_ratio", "total_return", "cagr")
WINDOWS_SCHEMA: dict[str, pl.DataType] = {
    "window": pl.Int64(),
    "train_start": pl.Date(),
    "train_end": pl.Date(),
    "test_start": pl.Date(),
    "test_end": pl.Date(),
    "variant": pl.String(),
    "objective": pl.String(),
    "train_value": pl.Float64(),
    "test_return": pl.Float64(),
    "test_sharpe": pl.Float64(),
    "in_sample_best": pl.String(),
    "in_sample_best_test_return": pl.Float64(),
}


class WalkForwardInputError(ValueError):
    """The returns cannot be walked forward (too short, unknown objective); says why."""


def add_years(day: date, years: int) -> date:
    """The same day ``years`` later (29 February becomes 28 February)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def objective_values(daily: pl.DataFrame, objective: str) -> pl.DataFrame:
    """variant, value of ``objective`` over all the rows given (in date order), per variant."""
    if objective not in METRIC_FUNCTIONS:
        raise WalkForwardInputError(f"objective {objective!r} unknown; allowed {OBJECTIVES}")
    compute = METRIC_FUNCTIONS[objective]
    rows = [
        (name, compute(part.sort("date")["portfolio_return"]))
        for (name,), part in daily.group_by("variant", maintain_order=True)
    ]
    return pl.DataFrame(rows, schema={"variant": pl.String, "value": pl.Float64}, orient="row")


def _best(daily: pl.DataFrame, objective: str) -> tuple[str, float]:
    values = objective_values(daily, objective).filter(pl.col("value").is_finite().fill_null(False))
    if values.is_empty():
        raise WalkForwardInputError(f"no variant has a finite {objective} on the window")
    row = values.sort(["value", "variant"], descending=[True, False]).row(0)
    return row[0], row[1]


def windows(first: date, last: date, train_years: int, test_years: int, window: str) -> list:
    """(train_start, test_start, test_end_exclusive) per window, in order."""
    if window not in ("expanding", "sliding"):
        raise WalkForwardInputError(f"window {window!r}; allowed ('expanding', 'sliding')")
    out, k = [], 0
    while (test_start := add_years(first, train_years + k * test_years)) <= last:
        train_start = first if window == "expanding" else add_years(test_start, -train_years)
        out.append((train_start, test_start, add_years(test_start, test_years)))
        k += 1
    if not out:
        raise WalkForwardInputError(
            f"returns from {first} to {last} are shorter than train_years={train_years}"
        )
    return out


def walk_forward(
    daily: pl.DataFrame,
    objective: str = "sharpe_ratio",
    train_years: int = 5,
    test_years: int = 1,
    window: str = "expanding",
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Roll the choice forward over ``daily`` (variant, date, portfolio_return).

    Returns (windows, curves): ``WINDOWS_SCHEMA`` rows, one per test window, with the chosen
    variant, its training objective, its test-window return and Sharpe, and the in-sample best
    (the variant best on the WHOLE period, i.e. chosen with hindsight) and its test return;
    curves: date, curve ('walk_forward' | 'in_sample_best'), portfolio_return, equity over the
    test windows (equity 1 before the first test day).
    """
    require_columns(
        daily, ["variant", "date", "portfolio_return"], "sweep daily returns", WalkForwardInputError
    )
    daily = daily.select("variant", "date", "portfolio_return").sort("variant", "date")
    first, last = daily["date"].min(), daily["date"].max()
    hindsight, _ = _best(daily, objective)
    rows, pieces = [], []
    for k, (train_start, test_start, test_end) in enumerate(
        windows(first, last, train_years, test_years, window)
    ):
        in_window = pl.col("date").is_between(train_start, test_start, closed="left")
        chosen, value = _best(daily.filter(in_window), objective)
        test = daily.filter(pl.col("date").is_between(test_start, test_end, closed="left"))
        own = test.filter(pl.col("variant") == chosen)
        best = test.filter(pl.col("variant") == hindsight)
        stats = objective_values(own, "total_return")["value"][0]
        sharpe = objective_values(own, "sharpe_ratio")["value"][0]
        rows.append(
            (k, train_start, test_start, test_start, own["date"].max(), chosen, objective,
             value, stats, sharpe, hindsight, objective_values(best, "total_return")["value"][0])
        )  # fmt: skip
        pieces.append(own.with_columns(curve=pl.lit("walk_forward")))
        pieces.append(best.with_columns(curve=pl.lit("in_sample_best")))
    table = pl.DataFrame(rows, schema=WINDOWS_SCHEMA, orient="row").with_columns(
        train_end=pl.col("train_end").dt.offset_by("-1d")
    )
    curves = (
        pl.concat(pieces)
        .sort("curve", "date")
        .with_columns(equity=(1.0 + pl.col("portfolio_return")).cum_prod().over("curve"))
        .select("date", "curve", "variant", "portfolio_return", "equity")
    )
    return table, curves

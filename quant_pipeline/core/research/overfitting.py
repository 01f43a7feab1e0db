"""Multiple-testing honesty: the deflated Sharpe ratio and the probability of backtest overfitting.

Pure (polars, numpy, the standard library). Every Sharpe ratio here is per period (daily returns:
not annualised) unless a name says ``annual``; kurtosis is not excess (3 for a normal).

* ``expected_maximum_sharpe`` - the Sharpe ratio the best of N unskilled trials is expected to
  show, Bailey & Lopez de Prado (2014), eq. 2 (via the False Strategy theorem):
  ``SR0 = sqrt(V) x ((1 - g) x PhiInv(1 - 1/N) + g x PhiInv(1 - 1/(N e)))``, g the
  Euler-Mascheroni constant, V the variance of the trials' Sharpe ratios.
* ``deflated_sharpe_ratio`` - the probabilistic Sharpe ratio of the selected trial against SR0:
  ``DSR = PSR(SR0)``, the project's one PSR (``core.backtest.metrics``) with
  ``benchmark_sharpe = SR0``.
* ``probability_of_backtest_overfitting`` - CSCV, Bailey, Borwein, Lopez de Prado & Zhu (2015):
  the share of in-sample/out-of-sample splits in which the in-sample best trial ranks in the
  bottom half out of sample (logit <= 0).

The frames never look beyond the rows given: the caller chooses the evaluation window.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import polars as pl

from quant_pipeline.core.backtest.metrics import (
    daily_risk_free,
    probabilistic_sharpe_ratio,
    sharpe_ratio,
)
from quant_pipeline.core.data.calendar import TRADING_DAYS_PER_YEAR
from quant_pipeline.core.data.frames import require_columns

EULER_GAMMA = 0.5772156649015329
DEFAULT_SPLITS = 16
LOGITS_SCHEMA: dict[str, pl.DataType] = {
    "combination": pl.Int64(),
    "best_in_sample": pl.String(),
    "in_sample_sharpe": pl.Float64(),
    "out_of_sample_sharpe": pl.Float64(),
    "out_of_sample_rank": pl.Float64(),
    "relative_rank": pl.Float64(),
    "logit": pl.Float64(),
}


class OverfittingInputError(ValueError):
    """The trials given cannot be judged (too few trials, rows or splits); the message says why."""


def expected_maximum_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """E[max SR] of ``n_trials`` independent unskilled trials whose Sharpe variance is given.

    Bailey & Lopez de Prado (2014), eq. 2, with mean 0. One trial is no selection: 0.
    ``sharpe_variance`` in the same (per-period) units as the Sharpe ratios compared with it.
    """
    if n_trials < 1:
        raise OverfittingInputError(f"n_trials must be >= 1, got {n_trials}")
    if not (math.isfinite(sharpe_variance) and sharpe_variance >= 0):
        raise OverfittingInputError(f"sharpe_variance must be >= 0, got {sharpe_variance!r}")
    if n_trials == 1:
        return 0.0
    inv = NormalDist().inv_cdf
    z = (1 - EULER_GAMMA) * inv(1 - 1 / n_trials) + EULER_GAMMA * inv(1 - 1 / (n_trials * math.e))
    return math.sqrt(sharpe_variance) * z


def deflated_sharpe_ratio(
    returns: pl.Series, n_trials: int, sharpe_variance: float, risk_free_rate: float = 0.0
) -> float | None:
    """P(true Sharpe > the expected best of ``n_trials`` unskilled trials): PSR(SR0).

    ``returns``: the selected trial's daily returns (no nulls); the PSR is the project's one
    (``core.backtest.metrics.probabilistic_sharpe_ratio``) with ``benchmark_sharpe = SR0``. Null
    when the PSR is undefined (fewer than 3 returns, constant returns).
    """
    sr0 = expected_maximum_sharpe(n_trials, sharpe_variance)
    return probabilistic_sharpe_ratio(returns, risk_free_rate, benchmark_sharpe=sr0)


def per_period_sharpe(annual_sharpe: float, periods_per_year: int = TRADING_DAYS_PER_YEAR) -> float:
    """An annual Sharpe in per-period units (÷ √periods), as the PSR's benchmark_sharpe."""
    return annual_sharpe / math.sqrt(periods_per_year)


def _returns_matrix(
    daily: pl.DataFrame, trial_col: str, returns_col: str
) -> tuple[list, np.ndarray]:
    """Wide (date x trial) matrix of returns; every trial must have every date."""
    require_columns(daily, [trial_col, "date", returns_col], "trial returns", OverfittingInputError)
    wide = daily.pivot(on=trial_col, index="date", values=returns_col).sort("date")
    trials = [c for c in wide.columns if c != "date"]
    matrix = wide.select(trials).to_numpy().astype(np.float64)
    holes = np.argwhere(~np.isfinite(matrix))
    if holes.size:
        r, c = holes[0]
        raise OverfittingInputError(
            f"trial returns: {len(holes)} missing or non-finite {returns_col} value(s), e.g. "
            f"{trial_col}={trials[c]!r} on {wide['date'][int(r)]}: every trial needs every date"
        )
    return trials, matrix


def trial_sharpes(matrix: np.ndarray) -> np.ndarray:
    """Per-period Sharpe (mean / sample std) of each column; NaN for a constant column."""
    std = matrix.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(std > 0, matrix.mean(axis=0) / std, np.nan)


@dataclass(frozen=True)
class OverfittingResult:
    """PBO and the per-combination detail (``logits``: ``LOGITS_SCHEMA``)."""

    pbo: float
    n_combinations: int
    n_splits: int
    logits: pl.DataFrame


def _combination_sharpes(counts: np.ndarray, sums: np.ndarray, squares: np.ndarray) -> np.ndarray:
    """Sharpe per (combination, trial) from block counts (C), sums and sums of squares (C x N)."""
    n = counts[:, None]
    mean = sums / n
    var = (squares - n * mean**2) / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = np.where(var > 1e-300, mean / np.sqrt(np.clip(var, 0.0, None)), np.nan)
    return sharpe


def probability_of_backtest_overfitting(
    daily: pl.DataFrame,
    trial_col: str = "variant",
    returns_col: str = "portfolio_return",
    n_splits: int = DEFAULT_SPLITS,
) -> OverfittingResult:
    """PBO by combinatorially symmetric cross-validation (Bailey, Borwein, Lopez de Prado, Zhu).

    ``daily``: one row per (trial, date) with ``trial_col``, ``date`` and ``returns_col``; every
    trial has every date. The T dates (in order) are cut into ``n_splits`` (S, even) contiguous
    blocks (``numpy.array_split``: sizes differ by at most one). For each of the C(S, S/2) ways of
    choosing S/2 blocks as the training set (the rest is the test set): the trial with the
    highest training Sharpe (first in column order on ties) is n*; its test Sharpe's rank among
    all N trials' test Sharpes (1 = worst; ties share the average rank) gives the relative rank
    w = rank / (N + 1) and the logit ln(w / (1 - w)). PBO = share of combinations with logit <= 0
    (the in-sample best is at or below the out-of-sample median). Sharpe = mean / sample std.
    """
    if n_splits < 2 or n_splits % 2:
        raise OverfittingInputError(f"n_splits must be an even number >= 2, got {n_splits}")
    trials, matrix = _returns_matrix(daily, trial_col, returns_col)
    t, n = matrix.shape
    if n < 2:
        raise OverfittingInputError(f"PBO needs at least 2 trials in {trial_col!r}, got {n}")
    if t < 2 * n_splits:
        raise OverfittingInputError(
            f"PBO needs at least 2 dates per split: {t} dates for {n_splits} splits"
        )
    blocks = np.array_split(np.arange(t), n_splits)
    b_count = np.array([len(b) for b in blocks], dtype=np.float64)
    b_sum = np.stack([matrix[b].sum(axis=0) for b in blocks])
    b_sq = np.stack([(matrix[b] ** 2).sum(axis=0) for b in blocks])
    chosen = np.array(
        [
            [i in c for i in range(n_splits)]
            for c in itertools.combinations(range(n_splits), n_splits // 2)
        ],
        dtype=np.float64,
    )
    rest = 1.0 - chosen
    is_sr = _combination_sharpes(chosen @ b_count, chosen @ b_sum, chosen @ b_sq)
    oos_sr = _combination_sharpes(rest @ b_count, rest @ b_sum, rest @ b_sq)
    best = np.argmax(np.where(np.isnan(is_sr), -np.inf, is_sr), axis=1)
    rows = np.arange(chosen.shape[0])
    oos_best = oos_sr[rows, best]
    oos_filled = np.where(np.isnan(oos_sr), -np.inf, oos_sr)
    own = np.where(np.isnan(oos_best), -np.inf, oos_best)[:, None]
    rank = 1.0 + (oos_filled < own).sum(axis=1) + 0.5 * ((oos_filled == own).sum(axis=1) - 1)
    relative = rank / (n + 1)
    logit = np.log(relative / (1.0 - relative))
    logits = pl.DataFrame(
        {
            "combination": rows,
            "best_in_sample": [str(trials[i]) for i in best],
            "in_sample_sharpe": is_sr[rows, best],
            "out_of_sample_sharpe": oos_best,
            "out_of_sample_rank": rank,
            "relative_rank": relative,
            "logit": logit,
        },
        schema=LOGITS_SCHEMA,
    )
    return OverfittingResult(
        pbo=float((logit <= 0).mean()),
        n_combinations=int(chosen.shape[0]),
        n_splits=n_splits,
        logits=logits,
    )


TRIALS_SCHEMA: dict[str, pl.DataType] = {
    "sharpe_ratio": pl.Float64(),
    "probabilistic_sharpe_ratio": pl.Float64(),
    "deflated_sharpe_ratio": pl.Float64(),
}


def deflate_trials(
    daily: pl.DataFrame,
    trial_col: str = "variant",
    returns_col: str = "portfolio_return",
    risk_free_rate: float = 0.0,
    periods_per_year: int = TRADING_DAYS_PER_YEAR,
) -> tuple[pl.DataFrame, dict[str, float | int | str | None]]:
    """Each trial's annual Sharpe, PSR (vs 0) and DSR given all the trials, and a summary.

    ``daily`` as for :func:`probability_of_backtest_overfitting`. Excess returns are
    ``r - rf_daily`` (``core.backtest.metrics.daily_risk_free``). N is the number of trials, V the
    sample variance (ddof=1) of their per-period Sharpe ratios; every trial's DSR is its PSR
    against the same SR0 = ``expected_maximum_sharpe(N, V)``. The summary holds n_trials,
    n_periods, sharpe_variance (per period), expected_maximum_sharpe (annual), best_trial (highest
    Sharpe, first on ties) and its sharpe_ratio, probabilistic_sharpe_ratio and
    deflated_sharpe_ratio.
    """
    trials, matrix = _returns_matrix(daily, trial_col, returns_col)
    if not trials:
        raise OverfittingInputError(f"no trials in {trial_col!r}")
    sharpes = trial_sharpes(matrix - daily_risk_free(risk_free_rate, periods_per_year))
    finite = sharpes[np.isfinite(sharpes)]
    variance = float(finite.var(ddof=1)) if finite.size >= 2 else 0.0
    sr0 = expected_maximum_sharpe(len(trials), variance)
    ann = math.sqrt(periods_per_year)
    rows = []
    for j, name in enumerate(trials):
        series = pl.Series(matrix[:, j])
        rf = (risk_free_rate, periods_per_year)
        rows.append(
            {
                trial_col: name,
                "sharpe_ratio": sharpe_ratio(series, *rf),
                "probabilistic_sharpe_ratio": probabilistic_sharpe_ratio(series, rf[0], 0.0, rf[1]),
                "deflated_sharpe_ratio": probabilistic_sharpe_ratio(series, rf[0], sr0, rf[1]),
            }
        )
    schema = {trial_col: daily.schema[trial_col], **TRIALS_SCHEMA}
    table = pl.DataFrame(rows, schema=schema)
    best = int(np.argmax(np.where(np.isfinite(sharpes), sharpes, -np.inf)))
    summary: dict[str, float | int | str | None] = {
        "n_trials": len(trials),
        "n_periods": int(matrix.shape[0]),
        "sharpe_variance": variance,
        "expected_maximum_sharpe": sr0 * ann,
        "best_trial": str(trials[best]),
        **{k: table.row(best, named=True)[k] for k in TRIALS_SCHEMA},
    }
    return table, summary


def common_dates(daily: pl.DataFrame, trial_col: str) -> pl.DataFrame:
    """The rows of ``daily`` on the dates every trial has (trials must share one calendar)."""
    n = daily[trial_col].n_unique()
    shared = daily.group_by("date").agg(pl.col(trial_col).n_unique().alias("_n"))
    keep = shared.filter(pl.col("_n") == n).select("date")
    return daily.join(keep, on="date", how="semi")


def multiple_testing_table(
    daily: pl.DataFrame,
    trial_col: str = "strategy",
    stated_sharpe: float = 1.0,
    n_splits: int = DEFAULT_SPLITS,
) -> tuple[pl.DataFrame, dict[str, float | int | str | None], OverfittingResult | None]:
    """Every trial's Sharpe, PSR vs 0, vs the benchmark's own Sharpe, vs ``stated_sharpe``, DSR.

    ``daily``: backtest.daily-like rows (``trial_col``, ``date``, ``portfolio_return``,
    ``benchmark_return``) restricted to the dates all trials share (:func:`common_dates`). The
    benchmark's annual Sharpe is measured over the same dates. The summary adds ``pbo``
    (null when there are too few dates or trials for CSCV with ``n_splits``), the benchmark's
    Sharpe and the stated one. Returns (table, summary, the PBO result or None).
    """
    shared = common_dates(daily, trial_col).sort(trial_col, "date")
    table, summary = deflate_trials(shared, trial_col)
    bench = shared.group_by("date").agg(pl.col("benchmark_return").first()).sort("date")
    bench_sharpe = sharpe_ratio(bench["benchmark_return"])
    against = []
    for name in table[trial_col].to_list():
        r = shared.filter(pl.col(trial_col) == name)["portfolio_return"]
        against.append(
            tuple(
                probabilistic_sharpe_ratio(r, benchmark_sharpe=per_period_sharpe(s))
                if s is not None
                else None
                for s in (bench_sharpe, stated_sharpe)
            )
        )
    table = table.with_columns(
        psr_vs_benchmark=pl.Series([a for a, _ in against], dtype=pl.Float64),
        psr_vs_stated=pl.Series([s for _, s in against], dtype=pl.Float64),
    )
    try:
        pbo = probability_of_backtest_overfitting(shared, trial_col, n_splits=n_splits)
    except OverfittingInputError:
        pbo = None
    summary.update(
        benchmark_sharpe=bench_sharpe,
        stated_sharpe=stated_sharpe,
        pbo=None if pbo is None else pbo.pbo,
        n_combinations=None if pbo is None else pbo.n_combinations,
    )
    return table, summary, pbo

"""Deflated Sharpe and PBO against the paper's numbers and an independent reference written here."""

from __future__ import annotations

import itertools
import math
import statistics
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from scipy import stats

from quant_pipeline.core.backtest.metrics import probabilistic_sharpe_ratio
from quant_pipeline.core.research.overfitting import (
    OverfittingInputError,
    deflate_trials,
    deflated_sharpe_ratio,
    expected_maximum_sharpe,
    multiple_testing_table,
    per_period_sharpe,
    probability_of_backtest_overfitting,
)

# Bailey & Lopez de Prado (2014), "The Deflated Sharpe Ratio", numerical example: annual SR 2.5
# over 1250 daily observations (250 a year), skew -3, kurtosis 10, N = 100 trials whose annual
# Sharpe ratios have variance 1/2. The paper prints SR0 = 0.1132 and DSR = 0.9004, and 0.9505 for
# N = 46 (figures checked against several independent re-implementations found by search).
PAPER_SR = 2.5 / math.sqrt(250)
PAPER_VARIANCE = 0.5 / 250


def _paper_returns() -> pl.Series:
    """1250 returns with Sharpe 2.5/sqrt(250), skew ~-3, kurtosis ~10: a two-point law.

    A two-point distribution has kurtosis = skew^2 + 1, so skew -3 forces kurtosis 10; 105 of
    1250 observations on the low point is the nearest whole count (skew -2.9994, kurt 9.9965).
    """
    x = np.concatenate([np.full(105, -1.0), np.zeros(1145)])
    return pl.Series((x - x.mean()) / x.std(ddof=1) + PAPER_SR)


def test_expected_maximum_sharpe_matches_the_paper_sr0():
    assert round(expected_maximum_sharpe(100, PAPER_VARIANCE), 4) == 0.1132


def test_deflated_sharpe_matches_the_papers_worked_example():
    returns = _paper_returns()
    assert deflated_sharpe_ratio(returns, 100, PAPER_VARIANCE) == pytest.approx(0.9004, abs=1e-4)
    assert deflated_sharpe_ratio(returns, 46, PAPER_VARIANCE) == pytest.approx(0.9505, abs=1e-4)


def test_one_trial_is_no_selection_so_dsr_equals_psr_against_zero():
    returns = _paper_returns()
    assert expected_maximum_sharpe(1, 0.3) == 0.0
    assert deflated_sharpe_ratio(returns, 1, 0.3) == probabilistic_sharpe_ratio(returns)


def _psr_vs(r: pl.Series, annual: float) -> float | None:
    return probabilistic_sharpe_ratio(r, benchmark_sharpe=per_period_sharpe(annual))


def test_psr_against_the_samples_own_sharpe_is_one_half():
    r = pl.Series([0.01, -0.02, 0.015, 0.003, -0.004, 0.02, -0.001])
    own_annual = r.mean() / r.std(ddof=1) * math.sqrt(252)
    assert per_period_sharpe(own_annual) == pytest.approx(r.mean() / r.std(ddof=1))
    assert _psr_vs(r, own_annual) == pytest.approx(0.5, abs=1e-12)
    assert _psr_vs(r, 1.0) < _psr_vs(r, 0.0)


def test_more_trials_raise_the_bar():
    bars = [expected_maximum_sharpe(n, 0.01) for n in (2, 10, 100, 1000)]
    assert bars == sorted(bars) and bars[0] > 0


# ---------------------------------------------------------------- independent reference
def _ref_dsr(returns: np.ndarray, n_trials: int, variance: float) -> float:
    g = 0.5772156649015329
    sr0 = math.sqrt(variance) * (
        (1 - g) * stats.norm.ppf(1 - 1 / n_trials) + g * stats.norm.ppf(1 - 1 / (n_trials * math.e))
    )
    sr = returns.mean() / returns.std(ddof=1)
    skew = stats.skew(returns)
    kurt = stats.kurtosis(returns, fisher=False)
    sd = math.sqrt((1 - skew * sr + (kurt - 1) / 4 * sr**2) / (len(returns) - 1))
    return float(stats.norm.cdf((sr - sr0) / sd))


def _ref_pbo(matrix: np.ndarray, splits: int) -> tuple[float, list[float]]:
    """CSCV written as the paper's loop: concatenate blocks, Sharpe each trial, rank, logit."""
    t, n = matrix.shape
    bounds = np.array_split(np.arange(t), splits)
    logits = []
    for train in itertools.combinations(range(splits), splits // 2):
        test = [b for b in range(splits) if b not in train]

        def sharpe(rows, j):
            col = [matrix[i, j] for i in rows]
            return statistics.fmean(col) / statistics.stdev(col)

        train_rows = [i for b in train for i in bounds[b]]
        test_rows = [i for b in test for i in bounds[b]]
        is_sr = [sharpe(train_rows, j) for j in range(n)]
        best = is_sr.index(max(is_sr))
        oos = [sharpe(test_rows, j) for j in range(n)]
        w = stats.rankdata(oos, method="average")[best] / (n + 1)
        logits.append(math.log(w / (1 - w)))
    return sum(lg <= 0 for lg in logits) / len(logits), logits


def _long(matrix: np.ndarray) -> pl.DataFrame:
    t, n = matrix.shape
    days = [date(2020, 1, 1) + timedelta(days=i) for i in range(t)]
    return pl.DataFrame(
        {
            "variant": [f"v{j:02d}" for j in range(n) for _ in range(t)],
            "date": days * n,
            "portfolio_return": matrix.T.reshape(-1),
        }
    )


@pytest.fixture
def seeded_trials() -> np.ndarray:
    rng = np.random.default_rng(20260101)
    drift = rng.normal(0.0, 0.0004, size=12)
    return rng.normal(0.0003, 0.01, size=(240, 12)) + drift


def test_pbo_matches_the_reference_on_seeded_trials(seeded_trials):
    result = probability_of_backtest_overfitting(_long(seeded_trials), n_splits=8)
    ref_pbo, ref_logits = _ref_pbo(seeded_trials, 8)
    assert result.n_combinations == math.comb(8, 4) == result.logits.height
    assert result.pbo == pytest.approx(ref_pbo, abs=1e-12)
    np.testing.assert_allclose(result.logits["logit"].to_numpy(), ref_logits, atol=1e-9)


def test_deflated_sharpe_of_every_trial_matches_the_reference(seeded_trials):
    table, summary = deflate_trials(_long(seeded_trials))
    sharpes = seeded_trials.mean(axis=0) / seeded_trials.std(axis=0, ddof=1)
    variance = sharpes.var(ddof=1)
    ref = [_ref_dsr(seeded_trials[:, j], 12, variance) for j in range(12)]
    np.testing.assert_allclose(table["deflated_sharpe_ratio"].to_numpy(), ref, atol=1e-9)
    assert summary["best_trial"] == f"v{int(np.argmax(sharpes)):02d}"
    assert summary["n_trials"] == 12 and summary["n_periods"] == 240
    assert summary["sharpe_variance"] == pytest.approx(variance, rel=1e-12)
    assert summary["deflated_sharpe_ratio"] < summary["probabilistic_sharpe_ratio"]


def test_pbo_is_one_when_the_in_sample_winner_always_loses_out_of_sample():
    # blocks of two rows; A earns in block 0 and loses in block 1, B the reverse
    m = np.array([[0.01, -0.01], [0.03, -0.03], [-0.01, 0.01], [-0.03, 0.03]])
    result = probability_of_backtest_overfitting(_long(m), n_splits=2)
    assert result.pbo == 1.0
    assert result.logits["best_in_sample"].to_list() == ["v00", "v01"]
    # rank 1 of 2 -> w = 1/3 -> logit ln(1/2)
    assert result.logits["logit"].to_list() == pytest.approx([math.log(0.5)] * 2)


def test_pbo_is_zero_when_the_winner_wins_in_every_block():
    m = np.array([[0.01, -0.01], [0.03, 0.0], [0.02, -0.02], [0.04, 0.01]])
    result = probability_of_backtest_overfitting(_long(m), n_splits=2)
    assert result.pbo == 0.0
    assert result.logits["logit"].to_list() == pytest.approx([math.log(2.0)] * 2)


def test_a_trial_missing_a_date_is_named():
    frame = _long(np.zeros((8, 2)) + 0.01).filter(
        ~((pl.col("variant") == "v01") & (pl.col("date") == date(2020, 1, 3)))
    )
    with pytest.raises(OverfittingInputError, match="variant='v01' on 2020-01-03"):
        probability_of_backtest_overfitting(frame, n_splits=2)


def test_odd_splits_are_rejected():
    with pytest.raises(OverfittingInputError, match="even"):
        probability_of_backtest_overfitting(_long(np.zeros((8, 2))), n_splits=3)


def test_multiple_testing_table_uses_shared_dates_and_the_benchmarks_own_sharpe():
    days = [date(2021, 1, d) for d in range(4, 11)]
    a = [0.01, -0.005, 0.02, 0.0, 0.004, -0.01, 0.012]
    b = [0.002, 0.001, -0.003, 0.004, 0.0, 0.002, 0.001]
    bench = [0.001, -0.002, 0.003, 0.0, 0.001, -0.001, 0.002]
    daily = pl.DataFrame(
        {
            "strategy": ["a"] * 7 + ["b"] * 6,
            "date": days + days[1:],  # b has no first day: it is dropped for both
            "portfolio_return": a + b[1:],
            "benchmark_return": bench + bench[1:],
        }
    )
    table, summary, pbo = multiple_testing_table(daily, stated_sharpe=1.0, n_splits=2)
    assert summary["n_periods"] == 6 and summary["n_trials"] == 2
    bench_sr = np.mean(bench[1:]) / np.std(bench[1:], ddof=1) * math.sqrt(252)
    assert summary["benchmark_sharpe"] == pytest.approx(bench_sr, rel=1e-12)
    row = table.filter(pl.col("strategy") == "a").row(0, named=True)
    assert row["psr_vs_benchmark"] == pytest.approx(_psr_vs(pl.Series(a[1:]), bench_sr))
    assert row["psr_vs_stated"] == pytest.approx(_psr_vs(pl.Series(a[1:]), 1.0))
    assert row["sharpe_ratio"] == pytest.approx(
        np.mean(a[1:]) / np.std(a[1:], ddof=1) * math.sqrt(252)
    )
    assert pbo is not None and summary["pbo"] == pbo.pbo and summary["n_combinations"] == 2

"""Research tables: factor diagnostics wiring, and the luck report on the demo market."""

import math
from datetime import date

import numpy as np
import polars as pl
import pytest

import quant_pipeline.core.research.tables as research_tables
from quant_pipeline.core.backtest.metrics import performance_metrics
from quant_pipeline.core.data.calendar import rebalance_dates, trading_days
from quant_pipeline.core.reporting.research_charts import (
    equity_curves_png,
    ic_summary_png,
    luck_png,
    quantile_returns_png,
)
from quant_pipeline.core.research.factor_diagnostics import forward_returns
from quant_pipeline.core.research.tables import factor_batches, factor_diagnostics, luck_report
from quant_pipeline.sources.demo import generate_market

PNG = b"\x89PNG\r\n\x1a\n"
D1, D2 = date(2020, 1, 2), date(2020, 2, 3)


def test_a_factor_equal_to_the_forward_return_has_ic_one_and_rising_quintiles():
    fwd = pl.DataFrame(
        {
            "rebalance_date": [D1] * 5 + [D2] * 5,
            "ticker": list("ABCDE") * 2,
            "forward_return": [0.05, -0.02, 0.01, 0.10, -0.07, 0.03, 0.02, -0.01, 0.0, 0.04],
        }
    )
    values = fwd.rename({"forward_return": "perfect"}).with_columns(
        noise=pl.Series([1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 4.0, 3.0, 2.0, 1.0]),
        empty=pl.lit(None, pl.Float64),
    )
    # five names a date: below the default minimum cross-section, so lower it to 2 here
    per_date, quantiles, summary = factor_diagnostics(
        values, fwd, ["perfect", "noise", "empty"], min_names=2
    )
    assert summary["factor"].to_list() == ["perfect", "noise"]  # no data, no row
    perfect = summary.row(0, named=True)
    assert perfect["mean_ic"] == pytest.approx(1.0)
    assert perfect["hit_rate"] == 1.0 and perfect["n_periods"] == 2
    # 5 names, 5 quintiles: one name each; the spread is best minus worst forward return
    assert per_date.filter(pl.col("factor") == "perfect")["spread"].to_list() == pytest.approx(
        [0.10 - -0.07, 0.04 - -0.01]
    )
    assert perfect["top_quantile_return"] == pytest.approx((0.10 + 0.04) / 2)
    q = quantiles.filter((pl.col("factor") == "perfect") & (pl.col("rebalance_date") == D1))
    assert q["mean_forward_return"].to_list() == pytest.approx([-0.07, -0.02, 0.01, 0.05, 0.10])
    # the second date has a previous one: the top quintile changed (D -> E), turnover 1
    assert per_date.filter(pl.col("factor") == "perfect")["turnover"].to_list()[1] == 1.0
    assert ic_summary_png(summary).startswith(PNG)
    assert quantile_returns_png(quantiles).startswith(PNG)


@pytest.fixture(scope="module")
def demo():
    """A 100-ticker demo market, monthly schedule, with forward returns (labels)."""
    market = generate_market(100, date(2016, 1, 1), date(2023, 12, 29), seed=11)
    prices = market.prices.filter(pl.col("adj_close") > 0).select("ticker", "date", "adj_close")
    dates = rebalance_dates(trading_days(prices), "monthly")
    fwd = forward_returns(prices, dates)
    eligible = fwd.select("rebalance_date", "ticker").join(
        market.securities.select("ticker", "sector"), on="ticker", how="left"
    )
    return eligible, fwd


def _top(eligible: pl.DataFrame, key: pl.Series, n: int = 10) -> pl.DataFrame:
    return (
        eligible.with_columns(_k=key)
        .filter(pl.col("_k").rank("ordinal", descending=True).over("rebalance_date") <= n)
        .select("rebalance_date", "ticker", weight=pl.lit(1.0 / n))
    )


def test_a_strategy_that_knows_part_of_the_future_beats_almost_every_random_portfolio(demo):
    eligible, fwd = demo
    labelled = eligible.join(fwd, on=["rebalance_date", "ticker"], how="left")
    rng = np.random.default_rng(3)
    # planted alpha: the forward return plus noise three times its cross-sectional spread
    noisy = labelled["forward_return"].to_numpy() + rng.normal(0, 0.25, labelled.height)
    row, random = luck_report(
        "planted", eligible, _top(eligible, pl.Series(noisy)), fwd, 10, None, 12.0,
        n_portfolios=100, seed=1,
    )  # fmt: skip
    assert row["sharpe_percentile"] > 95 and row["cagr_percentile"] > 95
    assert row["sharpe"] < row["oracle_sharpe"]
    assert random.height == 100 and row["n_periods"] == eligible["rebalance_date"].n_unique()
    assert luck_png(pl.DataFrame([row]), {"planted": random}).startswith(PNG)


def test_strategies_on_random_factors_sit_near_the_middle_of_the_random_baseline(demo):
    eligible, fwd = demo
    percentiles = []
    for seed in range(16):
        rng = np.random.default_rng(100 + seed)
        weights = _top(eligible, pl.Series(rng.random(eligible.height)))
        row, _ = luck_report(
            "random", eligible, weights, fwd, 10, None, 12.0, n_portfolios=60, seed=seed
        )
        percentiles.append(row["sharpe_percentile"])
    # each is uniform on 0..100 under the null; the mean of 16 has sd 29/4 ~ 7
    assert 30 < np.mean(percentiles) < 70
    assert min(percentiles) < 50 < max(percentiles)


def test_the_probabilistic_sharpe_ratio_comes_from_the_daily_returns(demo):
    eligible, fwd = demo
    weights = _top(eligible, pl.Series(np.arange(eligible.height, dtype=float)))
    up = [0.01, 0.02, 0.015, 0.012] * 10
    args = ("x", eligible, weights, fwd, 10, 0.3, 12.0)
    row, _ = luck_report(*args, daily_returns=up, n_portfolios=5)
    assert row["probabilistic_sharpe_ratio"] > 0.99
    none, _ = luck_report(*args, n_portfolios=5)
    assert none["probabilistic_sharpe_ratio"] is None


def test_the_luck_table_counts_the_first_day_like_backtest_metrics(demo):
    # backtest.daily's first day (return 0: bought at that close), then 1%, 2%, -1%, 3%.
    # All five days: mean 0.01, deviations -.01, 0, .01, -.02, .02 -> std sqrt(0.001 / 4),
    # SR = sqrt(0.4), skew 0, kurtosis 6.8e-8 / 4e-8 = 1.7,
    # z = sqrt(0.4) x sqrt(4) / sqrt(1 + 0.7 / 4 x 0.4) = 1.22284 -> PSR = Phi(z) = 0.8893.
    # (Dropping the first day, as this table used to, gave 0.8553.)
    eligible, fwd = demo
    weights = _top(eligible, pl.Series(np.arange(eligible.height, dtype=float)))
    days = [0.0, 0.01, 0.02, -0.01, 0.03]
    row, _ = luck_report(
        "x", eligible, weights, fwd, 10, 0.3, 12.0, daily_returns=days, n_portfolios=5
    )
    z = math.sqrt(0.4) * 2.0 / math.sqrt(1.07)
    assert row["probabilistic_sharpe_ratio"] == pytest.approx(
        0.5 * (1.0 + math.erf(z / math.sqrt(2.0))), rel=1e-12
    )
    assert row["probabilistic_sharpe_ratio"] == pytest.approx(0.8893, abs=1e-4)
    daily = pl.DataFrame(
        {"date": [date(2021, 1, d) for d in range(4, 9)], "portfolio_return": days}
    )
    table = dict(performance_metrics(daily, benchmark_col=None).rows())
    assert row["probabilistic_sharpe_ratio"] == table["probabilistic_sharpe_ratio"]


def test_the_equity_chart_draws_every_strategy():
    daily = pl.DataFrame(
        {
            "strategy": ["a", "a", "b", "b"],
            "date": [D1, D2, D1, D2],
            "equity": [1.0, 1.1, 1.0, 0.9],
            "benchmark_equity": [1.0, 1.05, 1.0, 1.05],
        }
    )
    assert equity_curves_png(daily).startswith(PNG)


def test_dates_with_a_small_cross_section_stay_in_the_per_date_table_but_not_in_the_averages():
    # D1: 4 names, factor = return (IC +1). D2: 2 names, factor = -return (IC -1).
    fwd = pl.DataFrame(
        {
            "rebalance_date": [D1] * 4 + [D2] * 2,
            "ticker": ["A", "B", "C", "D", "A", "B"],
            "forward_return": [0.04, 0.01, -0.02, 0.03, 0.05, -0.05],
        }
    )
    values = fwd.with_columns(
        f=pl.when(pl.col("rebalance_date") == D1)
        .then(pl.col("forward_return"))
        .otherwise(-pl.col("forward_return"))
    ).drop("forward_return")
    per_date, _, everything = factor_diagnostics(values, fwd, ["f"], quantiles=2, min_names=2)
    assert per_date.select("rebalance_date", "ic", "n").rows() == [(D1, 1.0, 4), (D2, -1.0, 2)]
    every = everything.row(0, named=True)
    assert (every["mean_ic"], every["n_periods"], every["small_dates_excluded"]) == (0.0, 2, 0)
    _, _, hygienic = factor_diagnostics(values, fwd, ["f"], quantiles=2, min_names=3)
    row = hygienic.row(0, named=True)
    # only D1 (4 names >= 3) is averaged: IC 1; quantile 2 = {A 0.04, D 0.03}, 1 = {B, C}
    assert (row["mean_ic"], row["n_periods"], row["small_dates_excluded"]) == (1.0, 1, 1)
    assert row["top_quantile_return"] == pytest.approx(0.035)
    assert row["bottom_quantile_return"] == pytest.approx(-0.005)
    assert (row["quantile_dates"], row["spread_dates"], row["min_names"]) == (1, 1, 3)
    assert row["mean_spread"] == pytest.approx(0.04)
    _, _, nothing = factor_diagnostics(values, fwd, ["f"], quantiles=2)  # default 20
    row = nothing.row(0, named=True)
    assert row["mean_ic"] is None and row["n_periods"] == 0 and row["small_dates_excluded"] == 2
    with pytest.raises(ValueError, match="min_names"):
        factor_diagnostics(values, fwd, ["f"], min_names=1)


def test_factors_in_batches_give_the_same_tables_as_one_pass(demo, monkeypatch):
    eligible, fwd = demo
    rng = np.random.default_rng(5)
    noisy = fwd["forward_return"].to_numpy() + rng.normal(0, 0.05, fwd.height)
    values = fwd.select("rebalance_date", "ticker").with_columns(
        good=pl.Series(noisy),
        bad=pl.Series(-noisy),
        flat=pl.lit(1.0),
        empty=pl.lit(None, pl.Float64),
        rand=pl.Series(rng.normal(0, 1, fwd.height)),
    )
    factors = ["good", "bad", "flat", "empty", "rand"]
    one = factor_diagnostics(values, fwd, factors)
    assert factor_batches(factors, values.height) == [factors]  # the default: one batch here
    # two factors' rows a batch: [good, bad], [flat, empty], [rand]
    monkeypatch.setattr(research_tables, "LONG_ROWS_PER_BATCH", 2 * values.height)
    assert factor_batches(factors, values.height, 2 * values.height) == [
        ["good", "bad"],
        ["flat", "empty"],
        ["rand"],
    ]
    passes = []
    one_pass = research_tables._per_date_and_quantile
    monkeypatch.setattr(
        research_tables,
        "_per_date_and_quantile",
        lambda frame, fwd, batch, q: passes.append(batch) or one_pass(frame, fwd, batch, q),
    )
    batched = factor_diagnostics(values, fwd, factors)
    assert passes == [["good", "bad"], ["flat", "empty"], ["rand"]]
    assert set(one[2]["factor"]) == {"good", "bad", "rand"}  # no IC (flat, empty): left out
    for whole, parts in zip(one, batched, strict=True):
        assert parts.equals(whole)


def test_factor_batches_hold_at_least_one_factor_and_one_batch_for_none():
    assert factor_batches(["a", "b"], rows=10, long_rows=5) == [["a"], ["b"]]
    assert factor_batches([], rows=10) == [[]]
    assert factor_batches(["a", "b", "c"], rows=0, long_rows=5) == [["a", "b", "c"]]


def test_signal_counts_give_entries_exits_and_the_rate_per_100_ticker_years():
    from datetime import date

    from quant_pipeline.core.research.tables import signal_counts

    events = pl.DataFrame(
        {
            "strategy": ["cup", "cup", "cup", "trend"],
            "ticker": ["A", "A", "B", "A"],
            "date": [date(2020, 3, 2), date(2020, 3, 3), date(2020, 5, 1), date(2021, 1, 4)],
            "entry": [True, True, False, True],
            "exit": [False, False, True, False],
        }
    )
    # 2020: 504 price rows = 2 ticker-years; 2021: 252 rows = 1 ticker-year
    prices = pl.DataFrame(
        {
            "ticker": ["A"] * 504 + ["B"] * 252,
            "date": [date(2020, 1, 1)] * 504 + [date(2021, 1, 1)] * 252,
        }
    )
    got = signal_counts(events, prices).rows()
    assert got == [
        ("cup", 2020, 2, 1, 1, 2.0, 100.0),  # 2 entries over 2 ticker-years
        ("cup", 2021, 0, 0, 0, 1.0, 0.0),  # never fired that year: a row of zeros
        ("trend", 2020, 0, 0, 0, 2.0, 0.0),
        ("trend", 2021, 1, 0, 1, 1.0, 100.0),
    ]

"""Metrics: golden values on five hand-computed days, invariants, and empyrical as a second
computation."""

from __future__ import annotations

import math
from datetime import date, timedelta

import empyrical
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from scipy import stats

from quant_pipeline.core.backtest import metrics
from quant_pipeline.core.backtest.metrics import (
    COMPARISON_METRICS,
    METRIC_KINDS,
    TRADE_METRICS,
    MetricsInputError,
    annual_returns,
    comparison_table,
    daily_risk_free,
    drawdown_series,
    monthly_returns,
    performance_metrics,
    probabilistic_sharpe_ratio,
    rolling_sharpe,
)

# r = portfolio, b = benchmark, over five trading days spread across three months.
R = [0.01, -0.02, 0.03, 0.0, 0.01]
B = [0.0, -0.01, 0.02, 0.01, 0.0]
DATES = [date(2021, 1, 28), date(2021, 1, 29), date(2021, 2, 1), date(2021, 2, 2), date(2021, 3, 1)]


@pytest.fixture
def daily() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "date": DATES,
            "portfolio_return": R,
            "benchmark_return": B,
            "turnover": [1.0, 0.0, 0.0, 0.5, 0.0],
            "costs": [0.001, 0.0, 0.0, 0.0005, 0.0],
            "fees": [3.0, 0.0, 0.0, 1.25, 0.0],  # commissions in currency (share-based run)
            "slippage": [1.0, 0.0, 0.0, 0.5, 0.0],
        }
    )


@pytest.fixture
def trades() -> pl.DataFrame:
    # Four closed trades (+10%, -5%, 0%, +20%) and one still open (+30%, ignored).
    return pl.DataFrame(
        {
            "ticker": ["A", "B", "C", "D", "E"],
            "exit_date": [date(2021, 2, 1)] * 4 + [None],
            "return": [0.10, -0.05, 0.0, 0.20, 0.30],
        },
        schema_overrides={"exit_date": pl.Date},
    )


@pytest.fixture
def random_days() -> pl.DataFrame:
    """Three years (756 days) of seeded returns with fat-ish tails and a benchmark link."""
    rng = np.random.default_rng(20240601)
    bench = rng.normal(0.0004, 0.011, 756)
    port = 0.0002 + 1.2 * bench + rng.standard_t(5, 756) * 0.006
    start = date(2015, 1, 1)
    return pl.DataFrame(
        {
            "date": [start + timedelta(days=i) for i in range(756)],
            "portfolio_return": port,
            "benchmark_return": bench,
        }
    )


def as_dict(frame: pl.DataFrame) -> dict[str, float | None]:
    return dict(frame.select("metric", "value").iter_rows())


def test_every_metric_matches_its_hand_computed_value(daily, trades):
    got = as_dict(performance_metrics(daily, trades, capital=1000.0))
    # equity: 1.01, 1.01*0.98 = 0.9898, *1.03 = 1.019494, *1.00 = 1.019494, *1.01 = 1.02968894
    equity_end = 1.02968894
    # mean r = 0.03 / 5 = 0.006; deviations 0.004, -0.026, 0.024, -0.006, 0.004;
    # squares sum to (16 + 676 + 576 + 36 + 16)e-6 = 1320e-6, sample variance = 1320e-6 / 4.
    var = 330e-6
    cagr = equity_end ** (252 / 5) - 1
    # benchmark mean 0.004, deviations -0.004, -0.014, 0.016, 0.006, -0.004:
    # population variance (16 + 196 + 256 + 36 + 16)e-6 / 5 = 104e-6,
    # covariance sum(dev_b * r) / 5 = (-0.04 + 0.28 + 0.48 + 0 - 0.04)e-3 / 5 = 136e-6.
    beta = 136 / 104  # = 17/13
    alpha_daily = 0.006 - beta * 0.004  # = 0.01/13
    # active r - b = 0.01, -0.01, 0.01, -0.01, 0.01: mean 0.002, deviations
    # 0.008, -0.012, ... squares (64 + 144 + 64 + 144 + 64)e-6 = 480e-6, sample var 120e-6.
    te = math.sqrt(120e-6 * 252)
    # PSR: daily Sharpe 0.006 / sqrt(330e-6); population moments m2 = 1320e-6 / 5 = 264e-6,
    # m3 = (64 - 17576 + 13824 - 216 + 64)e-9 / 5 = -768e-9,
    # m4 = (256 + 456976 + 331776 + 1296 + 256)e-12 / 5 = 158112e-12.
    sr = 0.006 / math.sqrt(var)
    skew = -768e-9 / 264e-6**1.5
    kurt = 158112e-12 / 264e-6**2
    psr_z = sr * math.sqrt(5 - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    expected = {
        "total_return": equity_end - 1,
        "cagr": cagr,
        "annual_volatility": math.sqrt(var * 252),
        "annual_variance": var * 252,  # = 0.08316
        "sharpe_ratio": 0.006 / math.sqrt(var) * math.sqrt(252),
        "probabilistic_sharpe_ratio": 0.5 * (1 + math.erf(psr_z / math.sqrt(2))),
        # downside: only -0.02 is below 0; sqrt(0.0004 / 5) = sqrt(8e-5) per day.
        "sortino_ratio": 0.006 * 252 / (math.sqrt(8e-5) * math.sqrt(252)),
        # worst point: 0.9898 / 1.01 - 1 = -0.02
        "max_drawdown": -0.02,
        "calmar_ratio": cagr / 0.02,
        # peak on day 1 (1.01), under water on day 2, back above on day 3: 2 days.
        "max_drawdown_duration_days": 2.0,
        "win_rate_days": 3 / 5,  # the 0.0 day is not a win
        # Jan 1.01 * 0.98 - 1 = -0.0102, Feb 1.03 * 1.00 - 1 = 0.03, Mar 0.01
        "best_month": 0.03,
        "worst_month": -0.0102,
        # sorted -0.02, 0, 0.01, 0.01, 0.03; position 0.05 * 4 = 0.2 -> -0.02 + 0.2 * 0.02
        "value_at_risk_95": -0.016,
        "trading_days": 5.0,
        "average_turnover": (1.0 + 0.5) / 2,  # rebalance days only
        "annual_turnover": 1.5 / 5 * 252,  # = 75.6
        "total_costs": 0.0015,
        "total_fees": 4.25,  # 3.00 + 1.25, currency
        "total_slippage": 1.5,
        "alpha": (1 + alpha_daily) ** 252 - 1,
        "beta": beta,
        "tracking_error": te,
        "information_ratio": 0.002 * 252 / te,
        "treynor_ratio": 0.006 * 252 / beta,
        "net_profit_currency": 1000.0 * (equity_end - 1),  # 29.68894
        # trades: closed +10%, -5%, 0%, +20%; the open +30% is ignored.
        "closed_trades": 4.0,
        "mean_winning_trade_return": (0.10 + 0.20) / 2,
        "mean_losing_trade_return": -0.05,
        "winning_trade_share": 2 / 4,
        "losing_trade_share": 1 / 4,  # the 0% trade is neither a win nor a loss
        "win_loss_return_ratio": 0.15 / 0.05,
        "mean_trade_return": 0.5 * 0.15 + 0.25 * -0.05,  # = 0.0625 = mean of the closed returns
    }
    assert list(got) == list(METRIC_KINDS), "every metric, in the documented order"
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-12, abs=1e-15), name


def test_probabilistic_sharpe_ratio_matches_scipy_moments(daily):
    r = np.array(R)
    sr = r.mean() / r.std(ddof=1)
    skew = stats.skew(r)
    kurt = stats.kurtosis(r, fisher=False)
    expected = stats.norm.cdf(sr * 2 / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2))
    got = as_dict(performance_metrics(daily))["probabilistic_sharpe_ratio"]
    assert got == pytest.approx(expected, rel=1e-12)


def test_metrics_frame_is_long_with_float_values(daily):
    out = performance_metrics(daily)
    assert out.schema == pl.Schema({"metric": pl.String, "value": pl.Float64})
    names = out["metric"].to_list()
    assert not set(TRADE_METRICS) & set(names), "no trade statistics without trades"
    assert "net_profit_currency" not in names, "no net profit without capital"


def test_risk_free_rate_is_converted_from_annual_to_daily(daily):
    rf = daily_risk_free(0.05)
    assert (1 + rf) ** 252 == pytest.approx(1.05, rel=1e-14)
    got = as_dict(performance_metrics(daily, risk_free_rate=0.05))
    excess = np.array(R) - rf
    assert got["sharpe_ratio"] == pytest.approx(
        excess.mean() / excess.std(ddof=1) * math.sqrt(252), rel=1e-12
    )


def test_sharpe_is_unchanged_when_returns_and_risk_free_move_together(daily):
    shift = 0.0003  # per day
    shifted = daily.with_columns(pl.col("portfolio_return") + shift)
    base = as_dict(performance_metrics(daily))
    moved = as_dict(performance_metrics(shifted, risk_free_rate=(1 + shift) ** 252 - 1))
    assert moved["sharpe_ratio"] == pytest.approx(base["sharpe_ratio"], rel=1e-9)
    assert moved["sortino_ratio"] == pytest.approx(base["sortino_ratio"], rel=1e-9)


def test_scaling_returns_scales_volatility_and_leaves_sharpe_unchanged(daily):
    k = 2.5
    base = as_dict(performance_metrics(daily))
    scaled = as_dict(performance_metrics(daily.with_columns(pl.col("portfolio_return") * k)))
    assert scaled["annual_volatility"] == pytest.approx(k * base["annual_volatility"], rel=1e-12)
    assert scaled["sharpe_ratio"] == pytest.approx(base["sharpe_ratio"], rel=1e-12)
    assert scaled["sortino_ratio"] == pytest.approx(base["sortino_ratio"], rel=1e-12)
    assert scaled["beta"] == pytest.approx(k * base["beta"], rel=1e-12)


def test_monotone_increasing_equity_has_no_drawdown_and_no_calmar():
    up = pl.DataFrame(
        {
            "date": [date(2021, 1, 4) + timedelta(days=i) for i in range(4)],
            "portfolio_return": [0.01, 0.0, 0.02, 0.005],
            "benchmark_return": [0.0, 0.01, 0.0, 0.0],
        }
    )
    got = as_dict(performance_metrics(up))
    assert got["max_drawdown"] == 0.0
    assert got["max_drawdown_duration_days"] == 0.0
    assert got["calmar_ratio"] is None
    assert got["sortino_ratio"] is None, "no day below the risk-free rate: undefined"


def test_drawdown_counts_the_starting_value_as_a_peak():
    # equity 0.98, 0.9898 never reaches the starting 1.0: drawdown -2%, then 0.9898 - 1 = -1.02%
    loss_first = pl.DataFrame(
        {"date": DATES[:2], "portfolio_return": [-0.02, 0.01], "benchmark_return": [0.0, 0.0]}
    )
    assert_frame_equal(
        drawdown_series(loss_first),
        pl.DataFrame({"date": DATES[:2], "drawdown": [-0.02, 0.98 * 1.01 - 1]}),
    )
    got = as_dict(performance_metrics(loss_first))
    assert got["max_drawdown"] == pytest.approx(-0.02)
    # peak is the start (day 0); not recovered by day 2: 2 days.
    assert got["max_drawdown_duration_days"] == 2.0


def test_drawdown_duration_is_the_longest_spell_including_the_recovery_day():
    # equity 1.1, 1.0 (down), 1.1 (recovered, 2 days), 1.0, 1.0, 1.0 (down to the end, 3 days)
    r = [0.1, 1.0 / 1.1 - 1, 0.1, 1.0 / 1.1 - 1, 0.0, 0.0]
    frame = pl.DataFrame(
        {
            "date": [date(2021, 1, 4) + timedelta(days=i) for i in range(6)],
            "portfolio_return": r,
        }
    )
    got = as_dict(performance_metrics(frame, benchmark_col=None))
    assert got["max_drawdown_duration_days"] == 3.0
    assert got["beta"] is None and got["alpha"] is None, "no benchmark, no relative metrics"


def test_benchmark_measured_against_itself_has_beta_one_and_no_strategy_costs(daily):
    got = as_dict(performance_metrics(daily, returns_col="benchmark_return"))
    assert got["beta"] == pytest.approx(1.0, rel=1e-12)
    assert got["alpha"] == pytest.approx(0.0, abs=1e-12)
    assert got["tracking_error"] == 0.0
    assert got["information_ratio"] is None
    assert got["average_turnover"] is None and got["total_costs"] is None
    assert got["total_fees"] is None and got["total_slippage"] is None
    # benchmark equity 1.0, 0.99, 1.0098, 1.019898, 1.019898
    assert got["total_return"] == pytest.approx(0.99 * 1.02 * 1.01 - 1, rel=1e-12)


def test_trade_fees_are_subtracted_from_trade_returns(trades):
    daily = pl.DataFrame(
        {"date": DATES[:2], "portfolio_return": [0.01, 0.0], "benchmark_return": [0.0, 0.0]}
    )
    with_fees = trades.with_columns(fees=pl.lit(0.01))
    got = as_dict(performance_metrics(daily, with_fees))
    # net closed returns: 0.09, -0.06, -0.01, 0.19 -> 2 wins, 2 losses
    assert got["mean_winning_trade_return"] == pytest.approx(0.14)
    assert got["mean_losing_trade_return"] == pytest.approx(-0.035)
    assert got["losing_trade_share"] == 0.5
    assert got["mean_trade_return"] == pytest.approx((0.09 - 0.06 - 0.01 + 0.19) / 4)


def test_trade_statistics_without_closed_trades_are_null(trades, daily):
    open_only = trades.filter(pl.col("exit_date").is_null())
    got = as_dict(performance_metrics(daily, open_only))
    assert got["closed_trades"] == 0.0
    assert [got[m] for m in TRADE_METRICS[1:]] == [None] * (len(TRADE_METRICS) - 1)


def test_metrics_match_empyrical_on_three_random_years(random_days):
    rf_annual = 0.02
    rf = daily_risk_free(rf_annual)
    got = as_dict(performance_metrics(random_days, risk_free_rate=rf_annual))
    r = random_days["portfolio_return"].to_numpy()
    b = random_days["benchmark_return"].to_numpy()
    alpha, beta = empyrical.alpha_beta(r, b, risk_free=rf)
    expected = {
        "sharpe_ratio": empyrical.sharpe_ratio(r, risk_free=rf),
        "sortino_ratio": empyrical.sortino_ratio(r, required_return=rf),
        "annual_volatility": empyrical.annual_volatility(r),
        "max_drawdown": empyrical.max_drawdown(r),
        "cagr": empyrical.annual_return(r),
        "calmar_ratio": empyrical.calmar_ratio(r),
        "alpha": alpha,
        "beta": beta,
        "value_at_risk_95": empyrical.value_at_risk(r, cutoff=0.05),
        # empyrical's excess_sharpe is the per-day information ratio.
        "information_ratio": empyrical.excess_sharpe(r, b) * math.sqrt(252),
        "total_return": empyrical.cum_returns_final(r),
    }
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
    assert got["max_drawdown"] < 0 and 0.5 < got["beta"] < 2, "the fixture is not degenerate"


def test_monthly_and_annual_returns_compound_daily_returns():
    frame = pl.DataFrame(
        {
            "date": [date(2020, 12, 30), date(2020, 12, 31), date(2021, 1, 4), date(2021, 2, 1)],
            "portfolio_return": [0.1, -0.1, 0.05, 0.02],
        }
    )
    assert_frame_equal(
        monthly_returns(frame, "portfolio_return"),
        pl.DataFrame(
            {
                "year": [2020, 2021, 2021],
                "month": [12, 1, 2],
                "return": [1.1 * 0.9 - 1, 0.05, 0.02],
            },
            schema_overrides={"year": pl.Int32, "month": pl.Int32},
        ),
    )
    assert_frame_equal(
        annual_returns(frame, "portfolio_return"),
        pl.DataFrame(
            {"year": [2020, 2021], "return": [1.1 * 0.9 - 1, 1.05 * 1.02 - 1]},
            schema_overrides={"year": pl.Int32},
        ),
    )


def test_rolling_sharpe_uses_only_the_trailing_window(daily):
    got = rolling_sharpe(daily, window=3)
    # window [0.03, 0.0, 0.01]: mean 0.04/3, sample std 0.0152753 (deviations 1/60, -1/75, -1/300)
    last = np.array([0.03, 0.0, 0.01])
    expected_last = last.mean() / last.std(ddof=1) * math.sqrt(252)
    first = np.array(R[:3])
    assert got["date"].to_list() == DATES
    assert got["rolling_sharpe"][:2].to_list() == [None, None]
    assert got["rolling_sharpe"][2] == pytest.approx(
        first.mean() / first.std(ddof=1) * math.sqrt(252), rel=1e-12
    )
    assert got["rolling_sharpe"][4] == pytest.approx(expected_last, rel=1e-12)


def test_comparison_table_has_one_row_per_strategy_with_headline_metrics(daily):
    strat = performance_metrics(daily).with_columns(strategy=pl.lit("value"))
    bench = performance_metrics(daily, returns_col="benchmark_return").with_columns(
        strategy=pl.lit("benchmark")
    )
    long = pl.concat([strat, bench]).filter(
        ~((pl.col("strategy") == "benchmark") & (pl.col("metric") == "calmar_ratio"))
    )
    table = comparison_table(long)
    s, b = as_dict(strat), as_dict(bench)
    expected = pl.DataFrame(
        {
            "strategy": ["value", "benchmark"],
            **{m: [s[m], None if m == "calmar_ratio" else b[m]] for m in COMPARISON_METRICS},
        },
        schema_overrides=dict.fromkeys(COMPARISON_METRICS, pl.Float64),
    )
    assert_frame_equal(table, expected)


def test_comparison_table_rejects_two_values_for_one_strategy_metric():
    long = pl.DataFrame({"strategy": ["a", "a"], "metric": ["cagr", "cagr"], "value": [0.1, 0.2]})
    with pytest.raises(MetricsInputError, match=r"\(strategy, metric\)"):
        comparison_table(long)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.drop("benchmark_return"), "missing column.*benchmark_return"),
        (lambda d: d.with_columns(portfolio_return=None), "'portfolio_return' has 5 null"),
        (lambda d: d.with_columns(date=pl.lit(date(2021, 1, 4))), "duplicated date"),
        (lambda d: d.head(0), "empty"),
        (
            lambda d: d.with_columns(strategy=pl.Series(["a", "b", "a", "b", "a"])),
            "several strategies",
        ),
    ],
)
def test_bad_daily_frames_are_rejected_with_the_rule_broken(daily, change, message):
    with pytest.raises(MetricsInputError, match=message):
        performance_metrics(change(daily))


def test_unsorted_daily_rows_give_the_same_metrics_as_sorted_ones(daily):
    assert_frame_equal(performance_metrics(daily.reverse()), performance_metrics(daily))


# The probabilistic Sharpe ratio is one function, also the luck table's (core.research.tables).
def test_probabilistic_sharpe_ratio_golden():
    # returns 1%, 2%, -1%, 3%, 0%: mean 0.01, deviations 0, .01, -.02, .02, -.01
    # std (ddof 1) = sqrt(0.001 / 4) -> SR = 0.01 / 0.0158114 = sqrt(0.4)
    # m2 = 0.0002, m3 = 0 -> skew 0, m4 = 3.4e-7 / 5 = 6.8e-8 -> kurtosis 6.8e-8 / 4e-8 = 1.7
    # z = sqrt(0.4) x sqrt(4) / sqrt(1 + 0.7 / 4 x 0.4) = 1.2649 / 1.0344 = 1.22284
    z = math.sqrt(0.4) * 2.0 / math.sqrt(1.07)
    expected = 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))  # Phi(1.22284) = 0.8893
    psr = probabilistic_sharpe_ratio(pl.Series([0.01, 0.02, -0.01, 0.03, 0.0]))
    assert psr == pytest.approx(expected, rel=1e-12)
    assert psr == pytest.approx(0.8893, abs=1e-4)


def test_probabilistic_sharpe_ratio_matches_scipy_moments_and_falls_with_a_higher_bar():
    r = np.random.default_rng(11).standard_t(5, 300) * 0.01 + 0.001
    sr = r.mean() / r.std(ddof=1)
    g3, g4 = stats.skew(r), stats.kurtosis(r, fisher=False)
    z = (sr - 0.02) * math.sqrt(299) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    assert probabilistic_sharpe_ratio(pl.Series(r), benchmark_sharpe=0.02) == pytest.approx(
        stats.norm.cdf(z), rel=1e-9
    )
    assert probabilistic_sharpe_ratio(
        pl.Series(r), benchmark_sharpe=0.1
    ) < probabilistic_sharpe_ratio(pl.Series(r))


def test_probabilistic_sharpe_ratio_is_null_for_too_few_or_constant_returns():
    assert probabilistic_sharpe_ratio(pl.Series([0.01, 0.02])) is None
    assert probabilistic_sharpe_ratio(pl.Series([0.01] * 10)) is None


@pytest.mark.parametrize("risk_free_rate", [0.0, 0.03])
def test_each_row_of_the_table_is_its_named_metric_function(random_days, risk_free_rate):
    # The table, the tear sheet and the charts share these functions: the row must be the
    # function's value exactly, not a second computation that happens to agree.
    table = as_dict(performance_metrics(random_days, risk_free_rate=risk_free_rate))
    r = random_days.sort("date")["portfolio_return"]
    rf = {"risk_free_rate": risk_free_rate}
    assert table["total_return"] == metrics.total_return(r)
    assert table["cagr"] == metrics.cagr(r)
    assert table["annual_volatility"] == metrics.annual_volatility(r)
    assert table["annual_variance"] == metrics.annual_variance(r)
    assert table["sharpe_ratio"] == metrics.sharpe_ratio(r, **rf)
    assert table["probabilistic_sharpe_ratio"] == metrics.probabilistic_sharpe_ratio(r, **rf)
    assert table["sortino_ratio"] == metrics.sortino_ratio(r, **rf)
    assert table["max_drawdown"] == metrics.max_drawdown(r)
    assert table["calmar_ratio"] == metrics.calmar_ratio(r)
    assert table["max_drawdown_duration_days"] == metrics.max_drawdown_duration(r)
    assert table["win_rate_days"] == metrics.win_rate_days(r)
    assert table["value_at_risk_95"] == metrics.value_at_risk(r, 0.05)


def test_named_metric_functions_on_five_hand_computed_days():
    r = pl.Series(R)  # 1%, -2%, 3%, 0%, 1%
    equity = [1.01, 1.01 * 0.98, 1.01 * 0.98 * 1.03, 1.01 * 0.98 * 1.03, 1.01 * 0.98 * 1.03 * 1.01]
    assert metrics.total_return(r) == pytest.approx(equity[-1] - 1.0, rel=1e-14)
    assert metrics.max_drawdown(r) == pytest.approx(0.98 - 1.0, rel=1e-14)  # 1.01 -> 0.9898
    # mean 0.006, deviations .004 -.026 .024 -.006 .004: sum of squares 0.00132, var 0.00033
    assert metrics.sharpe_ratio(r) == pytest.approx(0.006 / math.sqrt(0.00033) * math.sqrt(252))
    assert metrics.win_rate_days(r) == 0.6
    assert metrics.max_drawdown_duration(r) == 2  # peak on day 1, back above it on day 3
    assert metrics.calmar_ratio(pl.Series([0.01, 0.02])) is None  # never below a peak


def test_orders_per_month_counts_orders_per_21_days_and_average_invested_is_the_mean_share():
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(42)]
    orders = [2] + [0] * 20 + [1] + [0] * 20
    cash = [0.0, 50.0, 100.0] + [100.0] * 39
    value = [100.0] * 42
    frame = pl.DataFrame(
        {
            "date": days,
            "portfolio_return": [0.0] * 42,
            "benchmark_return": [0.0] * 42,
            "orders": orders,
            "cash": cash,
            "portfolio_value": value,
        }
    )
    got = dict(metrics.performance_metrics(frame).iter_rows())
    assert got["orders_per_month"] == pytest.approx(3 / 2)  # 3 orders, 42 days = 2 months
    # invested share 1, 0.5, 0 then 0 for 39 days: mean 1.5 / 42
    assert got["average_invested"] == pytest.approx(1.5 / 42)
    three = frame.head(3)
    assert metrics.average_invested(three) == pytest.approx(0.5)
    bench = dict(metrics.performance_metrics(frame, returns_col="benchmark_return").iter_rows())
    assert bench["orders_per_month"] is None and bench["average_invested"] is None

"""Evaluation tables: metrics per strategy with capital and fees, against every benchmark,
monthly returns and sector exposure."""

from __future__ import annotations

import math
from datetime import date, timedelta

import empyrical
import numpy as np
import polars as pl
import pytest

from quant_pipeline.core.backtest.benchmark_returns import benchmark_table, ticker_benchmark
from quant_pipeline.core.backtest.comparison import (
    metrics_for_strategies,
    monthly_summary,
    relative_metrics,
    sector_exposure,
    starting_capital,
)

START = date(2020, 1, 1)


def strategy_daily(returns: list[float], name: str = "s", capital: float = 1000.0):
    equity = np.cumprod(1 + np.array(returns))
    return pl.DataFrame(
        {
            "strategy": name,
            "date": [START + timedelta(days=i) for i in range(len(returns))],
            "portfolio_return": returns,
            "benchmark_return": [0.0] * len(returns),
            "equity": equity,
            "benchmark_equity": [1.0] * len(returns),
            "drawdown": equity / np.maximum.accumulate(equity) - 1,
            "turnover": [1.0] + [0.0] * (len(returns) - 1),
            "costs": [0.002] + [0.0] * (len(returns) - 1),
            "portfolio_value": equity * capital,
            "fees": [1.5] + [0.0] * (len(returns) - 1),
            "slippage": [0.5] + [0.0] * (len(returns) - 1),
        }
    )


def test_share_based_runs_get_net_profit_in_currency_and_total_fees():
    daily = strategy_daily([-0.002, 0.1, -0.05])
    trades = pl.DataFrame(
        {"strategy": ["s"], "exit_date": [None], "return": [0.1]},
        schema_overrides={"exit_date": pl.Date},
    )
    assert starting_capital(daily) == pytest.approx(1000.0)
    long = metrics_for_strategies(daily, trades)
    got = dict(long.filter(pl.col("strategy") == "s").select("metric", "value").iter_rows())
    # equity 0.998 * 1.1 * 0.95 = 1.04291 -> net profit 1000 * 0.04291 = 42.91
    assert got["net_profit"] == pytest.approx(42.91)
    assert got["total_fees"] == 1.5 and got["total_slippage"] == 0.5
    bench = dict(long.filter(pl.col("strategy") == "benchmark").select("metric", "value").rows())
    assert "net_profit" not in bench and bench["total_fees"] is None  # no capital, no fees


def test_a_blend_row_without_fees_of_its_own_reports_them_as_not_measured_not_zero():
    # a blend's daily rows sit next to share-based ones with null cash, fees and slippage
    sleeve = strategy_daily([0.0, 0.1, -0.05], "sleeve")
    blend = strategy_daily([0.0, 0.05, 0.02], "blend").with_columns(
        pl.lit(None, pl.Float64).alias("fees"), pl.lit(None, pl.Float64).alias("slippage")
    )
    trades = pl.DataFrame(
        schema={"strategy": pl.String, "exit_date": pl.Date, "return": pl.Float64}
    )
    long = metrics_for_strategies(pl.concat([sleeve, blend]), trades)
    got = dict(long.filter(pl.col("strategy") == "blend").select("metric", "value").iter_rows())
    assert got["total_fees"] is None and got["total_slippage"] is None
    # 1000 * (1.05 * 1.02 - 1) = 71.0
    assert got["net_profit"] == pytest.approx(71.0)
    sleeve_m = dict(long.filter(pl.col("strategy") == "sleeve").select("metric", "value").rows())
    assert sleeve_m["total_fees"] == 1.5
    # strategies by name, the benchmark last (the CLI's comparison table keeps this order)
    assert long["strategy"].unique(maintain_order=True).to_list() == [
        "blend",
        "sleeve",
        "benchmark",
    ]


def test_relative_metrics_against_a_ticker_benchmark_match_hand_and_empyrical():
    # Benchmark ticker X returns b; the strategy is r = 0.001 + 2 b exactly, so beta = 2 and
    # the daily alpha is 0.001 (annualised (1.001)^252 - 1); active r - b = 0.001 + b.
    b = [0.0, 0.01, -0.02, 0.015, 0.005, -0.01]  # day 1 is the start: 0 in both frames
    r = [0.0] + [0.001 + 2 * x for x in b[1:]]
    daily = strategy_daily(r)
    closes = np.cumprod([100.0] + [1 + x for x in b[1:]])
    prices = pl.DataFrame(
        {
            "ticker": "X",
            "date": daily["date"],
            "close": closes,
        }
    ).with_columns(pl.col("close").pct_change().alias("daily_return"))
    table = benchmark_table({"X": ticker_benchmark(prices, "X")})
    got = dict(relative_metrics(daily, table).select("metric", "value").iter_rows())
    rr, bb = np.array(r), np.array(b)
    alpha, beta = empyrical.alpha_beta(rr, bb)
    # Day 1 has r = 0 (not 0.001 + 2 * 0), so the fit is not exact: compare with empyrical and
    # with the closed forms on the same arrays.
    assert got["beta"] == pytest.approx(beta, rel=1e-9)
    assert got["alpha"] == pytest.approx(alpha, rel=1e-9)
    active = rr - bb
    te = active.std(ddof=1) * math.sqrt(252)
    assert got["tracking_error"] == pytest.approx(te, rel=1e-12)
    assert got["information_ratio"] == pytest.approx(active.mean() * 252 / te, rel=1e-12)
    assert got["information_ratio"] == pytest.approx(
        empyrical.excess_sharpe(rr, bb) * math.sqrt(252), rel=1e-9
    )
    assert got["benchmark_total_return"] == pytest.approx(closes[-1] / closes[0] - 1, rel=1e-12)
    n = len(b)
    strategy_cagr = float(np.prod(1 + rr)) ** (252 / n) - 1
    bench_cagr = float(np.prod(1 + bb)) ** (252 / n) - 1
    assert got["excess_cagr"] == pytest.approx(strategy_cagr - bench_cagr, rel=1e-9)


def test_relative_metrics_golden_beta_and_alpha_when_the_fit_is_exact():
    # r = 0.001 + 2 b on every day (day 1's benchmark return is 0, so r_1 = 0.001).
    b = [0.0, 0.01, -0.02, 0.015, 0.005, -0.01]
    r = [0.001 + 2 * x for x in b]
    daily = strategy_daily(r)
    table = pl.DataFrame(
        {"date": daily["date"][1:], "benchmark": "X", "return": b[1:]},
    )
    got = dict(relative_metrics(daily, table).select("metric", "value").iter_rows())
    assert got["beta"] == pytest.approx(2.0, rel=1e-12)
    assert got["alpha"] == pytest.approx(1.001**252 - 1, rel=1e-9)
    # active = 0.001 + b: its std is std(b); mean 0.001 + mean(b) = 0.001 + 0.0
    te = float(np.std(b, ddof=1)) * math.sqrt(252)
    assert got["tracking_error"] == pytest.approx(te, rel=1e-12)
    assert got["information_ratio"] == pytest.approx(0.001 * 252 / te, rel=1e-9)


def test_monthly_summary_compounds_portfolio_and_benchmark_per_month():
    daily = pl.DataFrame(
        {
            "strategy": "s",
            "date": [date(2021, 1, 29), date(2021, 1, 31), date(2021, 2, 1)],
            "portfolio_return": [0.1, 0.1, -0.05],
            "benchmark_return": [0.0, 0.05, 0.02],
        }
    )
    got = monthly_summary(daily)
    assert got.rows() == [
        ("s", 2021, 1, pytest.approx(0.21), pytest.approx(0.05), pytest.approx(0.16)),
        ("s", 2021, 2, pytest.approx(-0.05), pytest.approx(0.02), pytest.approx(-0.07)),
    ]


def test_sector_exposure_sums_position_weights_per_rebalance():
    positions = pl.DataFrame(
        {
            "rebalance_date": [date(2021, 1, 4)] * 3 + [date(2021, 4, 1)],
            "ticker": ["A", "B", "C", "A"],
            "sector": ["Energy", "Energy", None, "Energy"],
            "weight": [0.3, 0.2, 0.45, 0.9],
        }
    )
    got = sector_exposure(positions)
    assert got.rows() == [
        (date(2021, 1, 4), "Energy", pytest.approx(0.5)),
        (date(2021, 1, 4), "Unknown", 0.45),
        (date(2021, 4, 1), "Energy", 0.9),
    ]

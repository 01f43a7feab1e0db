"""LEAN's statistics table: golden values from LEAN's own definitions on a five-day backtest.

The definitions are QuantConnect/Lean's (PortfolioStatistics.cs, Statistics.cs,
StatisticsBuilder.cs, CapacityEstimate.cs, SymbolCapacity.cs, SecurityPortfolioModel.cs); the
expected values are worked out by hand below, or, for the moment-based ones, recomputed with
numpy / scipy from LEAN's formulas.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from scipy import stats

from quant_pipeline.core.backtest.lean_statistics import (
    LEAN_STATISTICS,
    display,
    estimated_strategy_capacity,
    lean_portfolio_statistics,
    lean_statistics,
    lean_transactions,
)
from quant_pipeline.core.backtest.metrics import MetricsInputError, lean_probabilistic_sharpe_ratio

D = [date(2020, 1, 1) + timedelta(days=i) for i in range(5)]
VALUES = [998.0, 1010.0, 1030.0, 1000.0, 1040.0]  # capital 1000: 998 after the first orders
BENCH = [0.0, 0.01, 0.005, -0.02, 0.015]


def daily() -> pl.DataFrame:
    returns = [VALUES[0] / 1000.0 - 1] + [
        b / a - 1 for a, b in zip(VALUES, VALUES[1:], strict=False)
    ]
    return pl.DataFrame(
        {
            "strategy": "s",
            "date": D,
            "portfolio_return": returns,
            "benchmark_return": BENCH,
            "equity": [v / 1000.0 for v in VALUES],
            "portfolio_value": VALUES,
        }
    )


def fills() -> pl.DataFrame:
    rows = [
        (D[0], "A", 10.0, 50.0, 1.0, 10.0),
        (D[0], "B", 5.0, 100.0, 1.0, 5.0),
        # day 3: the buy is listed first; LEAN's record needs the sale first (the simulation
        # sells before it buys), so the average price is still 50 when the 4 shares go
        (D[2], "A", 2.0, 56.0, 0.0, 8.0),
        (D[2], "A", -4.0, 60.0, 1.0, 6.0),
        (D[4], "A", -8.0, 50.0, 1.0, 0.0),
        (D[4], "B", -5.0, 100.0, 0.0, 0.0),
    ]
    return pl.DataFrame(
        [("s", *r) for r in rows],
        schema={
            "strategy": pl.String,
            "rebalance_date": pl.Date,
            "ticker": pl.String,
            "shares": pl.Float64,
            "execution_price": pl.Float64,
            "commission": pl.Float64,
            "shares_after": pl.Float64,
        },
        orient="row",
    )


def bars() -> pl.DataFrame:
    closes = {"A": [50.0, 55.0, 60.0, 58.0, 50.0], "B": [100.0] * 5}
    volumes = {"A": 1_000_000.0, "B": 100_000.0}
    return pl.DataFrame(
        [(t, d, c, volumes[t]) for t, cs in closes.items() for d, c in zip(D, cs, strict=True)],
        schema=["ticker", "date", "close", "volume"],
        orient="row",
    )


def table(risk_free_rate: float = 0.0) -> dict[str, float | None]:
    frame = lean_statistics(daily(), fills(), bars(), risk_free_rate)
    assert frame["statistic"].to_list() == list(LEAN_STATISTICS)
    return dict(frame.select("statistic", "value").iter_rows())


def test_closing_fills_are_recorded_at_the_average_price_minus_twice_their_fee():
    got = lean_transactions(fills().drop("strategy"))
    # A: 4 sold at 60 against an average of 50, fee 1: 40 - 2 = 38. Then 2 bought at 56: average
    # (6 * 50 + 2 * 56) / 8 = 51.5; 8 sold at 50: -12 - 2 = -14. B: 5 at 100 against 100: 0.
    assert got.select("date", "ticker", "profit_loss").rows() == [
        (D[2], "A", 38.0),
        (D[4], "A", -14.0),
        (D[4], "B", 0.0),
    ]


def test_trade_statistics_follow_lean_portfolio_statistics():
    got = table()
    assert got["Total Orders"] == 6  # orders, not round trips (there are 2 round trips)
    assert got["Total Fees"] == 4.0
    # each record over the running capital: 38 / 1000 (win), -14 / 1038 and 0 / 1024 (losses:
    # LEAN counts a zero as a loss)
    average_loss = (-14 / 1038 + 0.0) / 2
    assert got["Average Win"] == pytest.approx(0.038, rel=1e-12)
    assert got["Average Loss"] == pytest.approx(average_loss, rel=1e-12)
    ratio = 0.038 / abs(average_loss)
    assert got["Profit-Loss Ratio"] == pytest.approx(ratio, rel=1e-12)
    assert got["Win Rate"] == pytest.approx(1 / 3) and got["Loss Rate"] == pytest.approx(2 / 3)
    assert got["Expectancy"] == pytest.approx(ratio / 3 - 2 / 3, rel=1e-12)


def test_return_and_drawdown_statistics_follow_lean():
    got = table()
    assert got["Start Equity"] == 1000.0 and got["End Equity"] == 1040.0
    assert got["Net Profit"] == pytest.approx(0.04, rel=1e-12)  # a fraction, LEAN prints 4%
    # calendar years: 4 days / 365
    assert got["Compounding Annual Return"] == pytest.approx(1.04 ** (365 / 4) - 1, rel=1e-12)
    # equity 1000, 998, 1010, 1030, 1000, 1040: deepest 1000 / 1030 - 1 = -2.91%, rounded to
    # 3 decimals as LEAN does; the spell from the 1030 peak (day 3) to 1040 (day 5) is 2 days
    assert got["Drawdown"] == 0.029
    assert got["Drawdown Recovery"] == 2


def _lean_moments(rf: float):
    r = np.array(daily()["portfolio_return"].to_list()[1:])  # LEAN drops day 1
    b = np.array(BENCH[1:])
    annual = (r.mean() + 1) ** 252 - 1
    annual_b = (b.mean() + 1) ** 252 - 1
    sd = math.sqrt(r.var(ddof=1) * 252)
    beta = np.cov(r, b, ddof=1)[0, 1] / b.var(ddof=1)
    return r, b, annual, annual_b, sd, beta


@pytest.mark.parametrize("rf", [0.0, 0.02])
def test_risk_statistics_follow_lean_formulas(rf):
    got = table(rf)
    r, b, annual, annual_b, sd, beta = _lean_moments(rf)
    assert got["Annual Variance"] == pytest.approx(r.var(ddof=1) * 252, rel=1e-12)
    assert got["Annual Standard Deviation"] == pytest.approx(sd, rel=1e-12)
    assert got["Sharpe Ratio"] == pytest.approx((annual - rf) / sd, rel=1e-12)
    # one losing day after day 1: MathNet's variance of one value is NaN, which LEAN turns to 0
    assert (r < 0).sum() == 1 and got["Sortino Ratio"] == 0.0
    assert got["Beta"] == pytest.approx(beta, rel=1e-12)
    assert got["Alpha"] == pytest.approx(annual - (rf + beta * (annual_b - rf)), rel=1e-12)
    te = math.sqrt((r - b).var(ddof=1) * 252)
    assert got["Tracking Error"] == pytest.approx(te, rel=1e-12)
    assert got["Information Ratio"] == pytest.approx((annual - annual_b) / te, rel=1e-12)
    assert got["Treynor Ratio"] == pytest.approx((annual - rf) / beta, rel=1e-12)
    # PSR against a Sharpe of 1 a year (1 / sqrt(252) a day), rf / 252 a day, scipy's
    # bias-corrected skewness and excess kurtosis plugged into LEAN's (kurt - 1) / 4
    sr = (r.mean() - rf / 252) / r.std(ddof=1)
    g1, g2 = stats.skew(r, bias=False), stats.kurtosis(r, fisher=True, bias=False)
    sigma = math.sqrt((1 - g1 * sr + (g2 - 1) / 4 * sr**2) / (len(r) - 1))
    psr = stats.norm.cdf((sr - 1 / math.sqrt(252)) / sigma)
    assert got["Probabilistic Sharpe Ratio"] == pytest.approx(psr, rel=1e-9)


def test_lean_sortino_uses_the_sample_deviation_of_the_losing_days():
    frame = daily().with_columns(
        pl.Series("portfolio_value", [1000.0, 990.0, 1000.0, 980.0, 1000.0]),
        pl.Series("portfolio_return", [0.0, -0.01, 1000 / 990 - 1, -0.02, 1000 / 980 - 1]),
    )
    got = lean_portfolio_statistics(frame, [], 1000.0, 0.01)
    r = np.array(frame["portfolio_return"].to_list()[1:])
    annual = (r.mean() + 1) ** 252 - 1
    downside = math.sqrt(np.var([-0.01, -0.02], ddof=1) * 252)  # 0.005 sqrt(2) sqrt(252)
    assert got["Sortino Ratio"] == pytest.approx((annual - 0.01) / downside, rel=1e-12)
    assert got["Net Profit"] == 0.0 and got["Drawdown"] == 0.02
    # no closing fill: the trade statistics stay at LEAN's 0
    assert got["Average Win"] == got["Win Rate"] == got["Expectancy"] == 0.0


def test_the_risk_free_rate_lowers_lean_sharpe_by_rf_over_the_deviation():
    plain, with_rf = table(0.0), table(0.02)
    sd = plain["Annual Standard Deviation"]
    assert plain["Sharpe Ratio"] - with_rf["Sharpe Ratio"] == pytest.approx(0.02 / sd, rel=1e-9)


def test_estimated_strategy_capacity_follows_lean_snapshots():
    # snapshots every max(min(4 - 1, 7), 1) = 3 days: on day 4, then forced after day 5.
    # Day 4: B (100 x 100,000 a day) is the smallest: 2% of its day-1 and day-2 dollar volume
    # (the order's bar and the next day's) = 400,000 over 1 order; its share of sales since the
    # start 500 / 1352, of holdings 5 x 100 / 1000 = 0.5 -> 400,000 / 0.5 = 800,000.
    # Day 5: B sold again: 2% of 100 x 100,000 = 200,000 over 1 order, 500 of 900 sold,
    # nothing held -> 360,000, blended 0.33 x 360,000 + 0.66 x 800,000 = 646,800 -> 647,000.
    capacity, lowest = estimated_strategy_capacity(
        fills().drop("strategy"), bars(), daily().select("date", "portfolio_value")
    )
    assert (capacity, lowest) == (647_000.0, "B")
    frame = lean_statistics(daily(), fills(), bars())
    shown = dict(frame.select("statistic", "display").iter_rows())
    assert shown["Estimated Strategy Capacity"] == "$650,000"  # 2 significant digits
    assert shown["Lowest Capacity Asset"] == "B"


def test_lean_prints_percentages_and_ratios_with_its_rounding():
    assert display("Net Profit", 0.04) == "4.000%"
    assert display("Win Rate", 1 / 3) == "33%"
    assert display("Sharpe Ratio", 1.23456) == "1.235"
    assert display("Total Fees", 4.0) == "$4.00"
    assert display("Total Orders", 6.0) == "6"


def test_lean_psr_is_a_half_for_a_zero_estimate_deviation_and_zero_below_four_returns():
    assert lean_probabilistic_sharpe_ratio(pl.Series([0.01, 0.02, 0.03]), 0.0) == 0.0
    got = lean_probabilistic_sharpe_ratio(pl.Series([0.01, -0.02, 0.03, 0.0, 0.01]), 0.05)
    assert 0.0 < got < 1.0


def test_too_few_returns_leave_lean_statistics_at_zero():
    short = daily().head(2)
    frame = lean_statistics(short, fills().filter(pl.col("rebalance_date") == D[0]), bars())
    got = dict(frame.select("statistic", "value").iter_rows())
    assert got["Sharpe Ratio"] == 0.0 and got["Average Win"] == 0.0
    assert got["End Equity"] == 1010.0


def test_a_strategy_without_equity_in_currency_is_an_error_naming_it():
    with pytest.raises(MetricsInputError, match="strategy 's'"):
        lean_statistics(daily().drop("portfolio_value"), fills(), bars())


class _EveryBarInADict:
    """The capacity loop's bar lookup as it was: one dict entry per bar (the oracle)."""

    def __init__(self, bars: pl.DataFrame) -> None:
        rows = bars.select("ticker", "date", "close", "volume").rows()
        self.bar = {(t, d): (c, v) for t, d, c, v in rows}

    def get(self, ticker: str, day: int) -> tuple[float | None, float | None]:
        return self.bar.get((ticker, date(1970, 1, 1) + timedelta(days=day)), (None, None))


def _random_backtest(seed: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """300 days, 12 tickers with gaps, null closes and zero volumes; fills that buy, sell out
    and come back after months (so a ticker leaves the capacity state and re-enters it)."""
    rng = np.random.default_rng(seed)
    days = [date(2015, 1, 2) + timedelta(days=i) for i in range(300)]
    bar_rows = []
    for k in range(12):
        for d in days:
            if rng.random() < 0.9:
                close = None if rng.random() < 0.03 else float(rng.uniform(5, 50))
                volume = 0.0 if rng.random() < 0.03 else float(rng.integers(1_000, 90_000))
                bar_rows.append((f"T{k:02d}", d, close, volume))
    fill_rows, held = [], {}
    for d in days:
        for k in rng.choice(12, size=int(rng.integers(0, 3)), replace=False):
            t = f"T{k:02d}"
            shares = float(rng.integers(1, 50)) if held.get(t, 0.0) == 0 else -held[t]
            held[t] = held.get(t, 0.0) + shares
            fill_rows.append((d, t, shares, float(rng.uniform(5, 50)), held[t]))
    schema = ["rebalance_date", "ticker", "shares", "execution_price", "shares_after"]
    bars_frame = pl.DataFrame(bar_rows, schema=["ticker", "date", "close", "volume"], orient="row")
    value = 1e5 * np.exp(np.cumsum(rng.normal(0, 0.01, len(days))))
    daily_frame = pl.DataFrame({"date": days, "portfolio_value": value})
    return pl.DataFrame(fill_rows, schema=schema, orient="row"), bars_frame, daily_frame


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_capacity_reads_bars_as_a_dict_of_every_bar_would(seed, monkeypatch):
    from quant_pipeline.core.backtest import lean_statistics as module

    fills_frame, bars_frame, daily_frame = _random_backtest(seed)
    shuffled = bars_frame.sample(fraction=1.0, seed=seed)
    got = estimated_strategy_capacity(fills_frame, shuffled, daily_frame)
    monkeypatch.setattr(module, "_DailyBars", _EveryBarInADict)
    expected = estimated_strategy_capacity(fills_frame, bars_frame, daily_frame)
    assert got == expected
    assert got[0] > 0 and got[1] is not None

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
    comparison_by_window,
    comparison_common_window,
    metrics_for_strategies,
    monthly_summary,
    relative_metrics,
    sector_exposure,
    starting_capital,
    tearsheet_metrics,
)
from quant_pipeline.core.backtest.metrics import MetricsInputError

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
    assert got["net_profit_currency"] == pytest.approx(42.91)
    assert got["total_fees"] == 1.5 and got["total_slippage"] == 0.5
    bench = dict(long.filter(pl.col("strategy") == "benchmark").select("metric", "value").rows())
    assert "net_profit_currency" not in bench and bench["total_fees"] is None  # no capital, no fees


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
    assert got["net_profit_currency"] == pytest.approx(71.0)
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


# Two strategies on one benchmark b (days 0..4); "early" starts on day 0, "late" on day 2. In
# backtest.daily each strategy's benchmark_return is 0 on its own first day.
B = [0.5, 0.01, 0.02, -0.01, 0.03]  # day 0's 0.5 is never used: day 0 opens "early"'s window


def two_starts(order: tuple[str, ...] = ("early", "late")) -> pl.DataFrame:
    early = strategy_daily([-0.001, 0.02, 0.01, 0.0, 0.01], "early").with_columns(
        pl.Series("benchmark_return", [0.0, *B[1:]])
    )
    late = strategy_daily([-0.002, 0.01, 0.02], "late").with_columns(
        pl.col("date") + timedelta(days=2), pl.Series("benchmark_return", [0.0, *B[3:]])
    )
    frames = {"early": early, "late": late}
    return pl.concat([frames[n] for n in order])


def _cagr(returns: list[float]) -> float:
    return float(np.prod(1 + np.array(returns))) ** (252 / len(returns)) - 1


def test_each_comparison_row_has_its_window_and_its_benchmark_over_those_dates():
    daily = two_starts()
    trades = pl.DataFrame(
        schema={"strategy": pl.String, "exit_date": pl.Date, "return": pl.Float64}
    )
    table = comparison_by_window(daily, metrics_for_strategies(daily, trades))
    rows = {r["strategy"]: r for r in table.iter_rows(named=True)}
    assert set(rows) == {"early", "late"}  # no benchmark row over some other window
    assert (rows["early"]["start"], rows["early"]["end"]) == (START, START + timedelta(days=4))
    assert (rows["late"]["start"], rows["late"]["end"]) == (
        START + timedelta(days=2),
        START + timedelta(days=4),
    )
    assert rows["late"]["trading_days"] == 3
    # early's benchmark: 1.01 * 1.02 * 0.99 * 1.03 over 5 days; late's: 0.99 * 1.03 over 3
    assert rows["early"]["benchmark_cagr"] == pytest.approx(
        (1.01 * 1.02 * 0.99 * 1.03) ** (252 / 5) - 1, rel=1e-12
    )
    assert rows["late"]["benchmark_cagr"] == pytest.approx(
        (0.99 * 1.03) ** (252 / 3) - 1, rel=1e-12
    )
    late_cagr = (0.998 * 1.01 * 1.02) ** (252 / 3) - 1
    assert rows["late"]["cagr"] == pytest.approx(late_cagr, rel=1e-12)
    assert rows["late"]["excess_cagr"] == pytest.approx(
        late_cagr - ((0.99 * 1.03) ** (252 / 3) - 1), rel=1e-12
    )


def test_the_common_window_table_measures_everyone_from_the_latest_start():
    table = comparison_common_window(two_starts())
    rows = {r["strategy"]: r for r in table.iter_rows(named=True)}
    assert table["strategy"].to_list() == ["early", "late", "benchmark"]
    assert set(table["start"]) == {START + timedelta(days=2)}
    assert set(table["end"]) == {START + timedelta(days=4)}
    # early's day-2 return (0.01) is before the window opens at day 2's close: it counts 0
    assert rows["early"]["total_return"] == pytest.approx(1.0 * 1.0 * 1.01 - 1, rel=1e-12)
    # late opens on day 2: it keeps its opening cost (-0.002)
    assert rows["late"]["total_return"] == pytest.approx(0.998 * 1.01 * 1.02 - 1, rel=1e-12)
    bench = _cagr([0.0, -0.01, 0.03])
    assert rows["benchmark"]["total_return"] == pytest.approx(0.99 * 1.03 - 1, rel=1e-12)
    assert rows["benchmark"]["cagr"] == pytest.approx(bench, rel=1e-12)
    assert rows["benchmark"]["excess_cagr"] == 0.0
    for name in ("early", "late"):
        assert rows[name]["benchmark_cagr"] == pytest.approx(bench, rel=1e-12)
    assert rows["early"]["excess_cagr"] == pytest.approx(_cagr([0.0, 0.0, 0.01]) - bench)
    # a second computation: empyrical on the same three days
    assert rows["late"]["sharpe_ratio"] == pytest.approx(
        empyrical.sharpe_ratio(np.array([-0.002, 0.01, 0.02])), rel=1e-9
    )


def test_the_benchmark_row_does_not_depend_on_which_strategy_comes_first():
    trades = pl.DataFrame(
        schema={"strategy": pl.String, "exit_date": pl.Date, "return": pl.Float64}
    )
    rows = []
    for order in (("early", "late"), ("late", "early")):
        long = metrics_for_strategies(two_starts(order), trades)
        rows.append(
            dict(long.filter(pl.col("strategy") == "benchmark").select("metric", "value").rows())
        )
    assert rows[0] == rows[1]
    assert rows[0]["total_return"] == pytest.approx(0.99 * 1.03 - 1, rel=1e-12)
    assert rows[0]["trading_days"] == 3


def test_strategies_that_disagree_about_the_benchmark_are_an_error():
    daily = two_starts().with_columns(
        pl.when((pl.col("strategy") == "late") & (pl.col("date") == START + timedelta(days=4)))
        .then(0.5)
        .otherwise(pl.col("benchmark_return"))
        .alias("benchmark_return")
    )
    with pytest.raises(MetricsInputError, match="benchmark_return differ on 1 dates"):
        comparison_common_window(daily)


def test_a_strategy_with_its_own_benchmark_is_compared_with_it_not_read_as_the_primary():
    # the LEAN Magic Formula compares with QVAL when the data has it: its benchmark_return is
    # QVAL's, so the benchmark row reads only the strategies on the primary benchmark
    qval = [0.0, 0.05, -0.02, 0.04, 0.01]
    lean = strategy_daily([-0.001, 0.0, 0.02, 0.01, 0.0], "lean").with_columns(
        pl.Series("benchmark_return", qval)
    )
    daily = pl.concat([two_starts(), lean])
    with pytest.raises(MetricsInputError, match="benchmark_return differ"):
        comparison_common_window(daily)
    table = comparison_common_window(daily, own_benchmarks={"lean": "QVAL"})
    rows = {r["strategy"]: r for r in table.iter_rows(named=True)}
    assert rows["benchmark"]["total_return"] == pytest.approx(0.99 * 1.03 - 1, rel=1e-12)
    # lean's excess is over QVAL on the window's dates (day 2's close to day 4): -0.02 is
    # before the window opens, so QVAL's window return is 1.04 * 1.01 - 1
    assert rows["lean"]["benchmark_cagr"] == pytest.approx(_cagr([0.0, 0.04, 0.01]), rel=1e-12)
    assert rows["lean"]["flags"] == (
        "benchmark_cagr and excess_cagr against its own benchmark QVAL, not the benchmark row"
    )
    assert rows["early"]["flags"] is None
    trades = pl.DataFrame(
        schema={"strategy": pl.String, "exit_date": pl.Date, "return": pl.Float64}
    )
    long = metrics_for_strategies(daily, trades, own_benchmarks={"lean": "QVAL"})
    bench = dict(long.filter(pl.col("strategy") == "benchmark").select("metric", "value").rows())
    assert bench["total_return"] == pytest.approx(0.99 * 1.03 - 1, rel=1e-12)
    with pytest.raises(MetricsInputError, match="none carries the primary benchmark"):
        comparison_common_window(lean, own_benchmarks={"lean": "QVAL"})


def test_no_common_window_is_an_error_naming_the_windows():
    late = two_starts().filter(pl.col("strategy") == "late")
    gone = strategy_daily([0.0, 0.01], "gone")  # ends on day 1, before late starts
    with pytest.raises(MetricsInputError, match="no common window"):
        comparison_common_window(pl.concat([late, gone]))


def test_the_tearsheet_benchmark_column_agrees_with_the_same_benchmark_in_relative_metrics():
    # the contradiction of issue 12: the benchmark column and the 'equal_weight' row must agree
    daily = two_starts()
    trades = pl.DataFrame(
        schema={"strategy": pl.String, "exit_date": pl.Date, "return": pl.Float64}
    )
    long = metrics_for_strategies(daily, trades)
    table = pl.DataFrame(
        {
            "date": [START + timedelta(days=i) for i in range(5)],
            "benchmark": "equal_weight",
            "return": B,
        }
    )
    relative = relative_metrics(daily.select("strategy", "date", "portfolio_return"), table)
    for name in ("early", "late"):
        part = daily.filter(pl.col("strategy") == name)
        shown = tearsheet_metrics(long, part, name, "equal_weight (same dates)")
        assert shown["strategy"].unique(maintain_order=True).to_list() == [
            name,
            "equal_weight (same dates)",
        ]
        column = dict(
            shown.filter(pl.col("strategy") != name).select("metric", "value").iter_rows()
        )
        row = dict(
            relative.filter(pl.col("strategy") == name).select("metric", "value").iter_rows()
        )
        assert column["total_return"] == pytest.approx(row["benchmark_total_return"], rel=1e-12)
        assert column["cagr"] == pytest.approx(row["benchmark_cagr"], rel=1e-12)
    late = tearsheet_metrics(long, daily.filter(pl.col("strategy") == "late"), "late", "b")
    assert dict(late.filter(pl.col("strategy") == "b").select("metric", "value").rows())[
        "total_return"
    ] == pytest.approx(0.99 * 1.03 - 1, rel=1e-12)


# The common window policy: "late" starts 2 days after "early" (with two strategies the median
# start is the earlier one). With a tolerance of 1 day it is left out, and early and the
# benchmark are compared over early's own 5 days.
def test_a_strategy_starting_beyond_the_tolerance_is_left_out_with_the_reason():
    table = comparison_common_window(two_starts(), tolerance_days=1)
    rows = {r["strategy"]: r for r in table.iter_rows(named=True)}
    assert table["strategy"].to_list() == ["early", "late", "benchmark"]
    assert set(table["start"]) == {START} and set(table["end"]) == {START + timedelta(days=4)}
    assert rows["late"]["flags"] == (
        "starts 2020-01-03, after the common window 2020-01-01..2020-01-05 opens (more than "
        "1 day after the median strategy start, 2020-01-01); compared in backtest.comparison "
        "over its own window"
    )
    assert all(rows["late"][k] is None for k in ("trading_days", "total_return", "cagr"))
    # early opens the window on its own first day: it keeps its opening cost
    early = 0.999 * 1.02 * 1.01 * 1.0 * 1.01 - 1
    assert rows["early"]["total_return"] == pytest.approx(early, rel=1e-12)
    assert rows["early"]["trading_days"] == 5 and rows["early"]["flags"] is None
    # the benchmark over exactly early's dates: 0 on the opening day, then b of days 1..4
    bench = 1.01 * 1.02 * 0.99 * 1.03 - 1
    assert rows["benchmark"]["total_return"] == pytest.approx(bench, rel=1e-12)
    assert rows["benchmark"]["trading_days"] == 5
    assert rows["early"]["benchmark_cagr"] == pytest.approx(rows["benchmark"]["cagr"], rel=1e-12)
    # the default tolerance (a year) keeps both, measured from the later start as before
    default = comparison_common_window(two_starts())
    assert default["flags"].null_count() == default.height
    assert set(default["start"]) == {START + timedelta(days=2)}


def test_members_within_the_tolerance_share_the_latest_member_start_and_the_benchmark():
    # a: days 0..4, b: days 1..4, c: days 4..4; the median start is b's day 1, so c (3 days
    # after it) is left out. c follows another benchmark (as magic_formula_lean with QVAL
    # would): not an error, it is left out.
    a = strategy_daily([0.0, 0.01, 0.02, -0.01, 0.03], "a").with_columns(
        pl.Series("benchmark_return", [0.0, *B[1:]])
    )
    b = strategy_daily([-0.003, 0.04, 0.0, 0.01], "b").with_columns(
        pl.col("date") + timedelta(days=1), pl.Series("benchmark_return", [0.0, *B[2:]])
    )
    c = strategy_daily([0.5], "c").with_columns(
        pl.col("date") + timedelta(days=4), pl.lit(0.9).alias("benchmark_return")
    )
    daily = pl.concat([a, b, c])
    table = comparison_common_window(daily, tolerance_days=1)
    rows = {r["strategy"]: r for r in table.iter_rows(named=True)}
    assert set(table["start"]) == {START + timedelta(days=1)}
    assert rows["c"]["flags"].startswith("starts 2020-01-05, after the common window")
    # a from day 1's close: 1.02 * 0.99 * 1.03; b opens on day 1 and keeps its -0.003
    assert rows["a"]["total_return"] == pytest.approx(1.02 * 0.99 * 1.03 - 1, rel=1e-12)
    assert rows["b"]["total_return"] == pytest.approx(0.997 * 1.04 * 1.0 * 1.01 - 1, rel=1e-12)
    assert rows["benchmark"]["total_return"] == pytest.approx(1.02 * 0.99 * 1.03 - 1, rel=1e-12)
    # backtest.metrics' benchmark rows are the same benchmark over the same window
    trades = pl.DataFrame(
        schema={"strategy": pl.String, "exit_date": pl.Date, "return": pl.Float64}
    )
    long = metrics_for_strategies(daily, trades, tolerance_days=1)
    bench = dict(long.filter(pl.col("strategy") == "benchmark").select("metric", "value").rows())
    assert bench["total_return"] == pytest.approx(rows["benchmark"]["total_return"], rel=1e-12)
    assert bench["trading_days"] == 4


def test_a_strategy_ending_early_is_left_out_of_the_common_window():
    gone = strategy_daily([0.0, 0.01], "gone")  # days 0..1; early runs to day 4
    early = two_starts().filter(pl.col("strategy") == "early")
    table = comparison_common_window(pl.concat([early, gone]), tolerance_days=2)
    rows = {r["strategy"]: r for r in table.iter_rows(named=True)}
    assert rows["gone"]["flags"].startswith(
        "ends 2020-01-02, before the common window 2020-01-01..2020-01-05 closes (more than "
        "2 days before the median strategy end, 2020-01-05)"
    )
    assert rows["early"]["trading_days"] == 5


def test_a_negative_tolerance_is_refused():
    with pytest.raises(MetricsInputError, match="tolerance must be a whole number of days >= 0"):
        comparison_common_window(two_starts(), tolerance_days=-1)


def test_one_early_starter_does_not_make_everyone_else_late():
    # the demo's case: a signal strategy trading from the first month, factor strategies 13-15
    # months later, one rarely-trading strategy 12 years later. Starts (days after START): 0,
    # 400, 420, 450 and 4400; the median start is day 420, so with a year of tolerance only the
    # last is left out and the window opens at day 450, the latest member start.
    offsets = {"signal": 0, "f1": 400, "f2": 420, "f3": 450, "rare": 4400}
    end = 4500
    frames = [
        strategy_daily([0.001] * (end - start + 1), name).with_columns(
            pl.col("date") + timedelta(days=start)
        )
        for name, start in offsets.items()
    ]
    table = comparison_common_window(pl.concat(frames), tolerance_days=365)
    rows = {r["strategy"]: r for r in table.iter_rows(named=True)}
    assert set(table["start"]) == {START + timedelta(days=450)}
    assert [n for n, r in rows.items() if r["flags"]] == ["rare"]
    assert "after the median strategy start, 2021-02-24" in rows["rare"]["flags"]
    assert rows["signal"]["trading_days"] == end - 450 + 1
    assert rows["benchmark"]["trading_days"] == end - 450 + 1

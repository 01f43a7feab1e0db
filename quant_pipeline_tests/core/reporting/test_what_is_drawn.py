"""What each chart draws: the data behind every line, bar, cell and band, and its labels.

Each ``*_png`` chart renders a ``*_figure``; these tests read the figure's artists back on tiny
hand-made frames, so a chart that plots the wrong column, drops a line or mislabels an axis fails.
"""

from __future__ import annotations

from datetime import date

import matplotlib.dates as mdates
import numpy as np
import polars as pl
import pytest
from matplotlib.container import BarContainer

from quant_pipeline.core.backtest.metrics import monthly_returns
from quant_pipeline.core.reporting.backtest_charts import (
    benchmarks_figure,
    drawdown_figure,
    equity_chart_figure,
    monthly_heatmap_figure,
    quarterly_returns_figure,
    rolling_sharpe_figure,
    sector_exposure_figure,
    sharpe_lines,
)
from quant_pipeline.core.reporting.research_charts import (
    equity_curves_figure,
    ic_summary_figure,
    luck_figure,
    quantile_returns_figure,
)

DAYS = [date(2024, 1, 2), date(2024, 1, 3), date(2024, 2, 1), date(2024, 2, 2)]
DAILY = pl.DataFrame(
    {
        "date": DAYS,
        "portfolio_return": [0.10, -0.05, 0.02, 0.01],
        "benchmark_return": [0.01, 0.01, -0.02, 0.00],
        "equity": [1.10, 1.045, 1.0659, 1.076559],
        "benchmark_equity": [1.01, 1.0201, 0.999698, 0.999698],
        "drawdown": [0.0, -0.05, -0.031, -0.0213100],
    }
)


def _lines(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def _x_dates(line):
    return [mdates.num2date(x).date() for x in mdates.date2num(line.get_xdata())]


def test_the_equity_chart_draws_both_equity_lines_and_the_drawdown_band():
    fig = equity_chart_figure(DAILY, "value strategy")
    top, bottom = fig.axes
    lines = _lines(top)
    assert set(lines) == {"portfolio", "benchmark"}
    assert lines["portfolio"].get_ydata().tolist() == DAILY["equity"].to_list()
    assert lines["benchmark"].get_ydata().tolist() == DAILY["benchmark_equity"].to_list()
    assert _x_dates(lines["portfolio"]) == DAYS
    assert (top.get_title(), top.get_ylabel(), top.get_yscale()) == (
        "value strategy",
        "equity (log)",
        "log",
    )
    [band] = bottom.collections
    # fill_between's polygon runs along the drawdown and back along 0
    ys = band.get_paths()[0].vertices[:, 1]
    assert min(ys) == pytest.approx(-0.05)
    assert bottom.get_ylabel() == "drawdown"


def test_the_equity_chart_leaves_out_a_missing_benchmark():
    fig = equity_chart_figure(DAILY.with_columns(benchmark_equity=None), "t")
    assert set(_lines(fig.axes[0])) == {"portfolio"}


def test_the_monthly_heatmap_cells_are_the_metrics_monthly_returns():
    fig = monthly_heatmap_figure(DAILY)
    ax = fig.axes[0]
    grid = np.ma.filled(ax.images[0].get_array().astype(float), np.nan)
    january = (1.10 * 0.95) - 1
    february = (1.02 * 1.01) - 1
    assert grid[0, 0] == pytest.approx(january)
    assert grid[0, 1] == pytest.approx(february)
    assert np.isnan(grid[0, 2:]).all()
    months = monthly_returns(DAILY, "portfolio_return")
    assert grid[0, :2].tolist() == months["return"].to_list()
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == sorted([f"{january:.1%}", f"{february:.1%}"])
    assert ax.get_title() == "Monthly returns"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["2024"]


def test_the_rolling_sharpe_chart_draws_the_sharpe_lines_table():
    rng = np.random.default_rng(3)
    n = 30
    daily = pl.DataFrame(
        {
            "date": pl.date_range(date(2024, 1, 1), date(2024, 1, 30), eager=True),
            "portfolio_return": rng.normal(0.001, 0.01, n),
            "benchmark_return": rng.normal(0.0, 0.01, n),
        }
    )
    fig = rolling_sharpe_figure(daily, window=10)
    ax = fig.axes[0]
    lines = _lines(ax)
    expected = sharpe_lines(daily, 10)
    got = lines["portfolio"].get_ydata()
    want = expected["portfolio_sharpe"].to_numpy()
    assert np.isnan(got[:9]).all() and np.allclose(got[9:], want[9:], rtol=0, atol=0)
    assert np.allclose(lines["benchmark"].get_ydata()[9:], expected["benchmark_sharpe"][9:])
    assert ax.get_title() == "Rolling Sharpe ratio (10 days)"


def test_the_drawdown_chart_draws_the_portfolio_and_the_benchmark_drawdown():
    fig = drawdown_figure(DAILY, "Drawdown of value")
    ax = fig.axes[0]
    lines = _lines(ax)
    assert lines["portfolio"].get_ydata().tolist() == DAILY["drawdown"].to_list()
    bench = DAILY["benchmark_equity"]
    assert lines["benchmark"].get_ydata() == pytest.approx((bench / bench.cum_max() - 1).to_list())
    assert ax.get_title() == "Drawdown of value"


def test_the_quarterly_chart_has_one_bar_pair_per_quarter_with_the_returns():
    quarterly = pl.DataFrame(
        {
            "quarter": ["2024Q1", "2024Q2", "2024Q3"],
            "portfolio_return": [0.05, -0.02, 0.01],
            "benchmark_return": [0.03, 0.00, -0.01],
        }
    )
    ax = quarterly_returns_figure(quarterly).axes[0]
    portfolio, benchmark = ax.containers
    assert [b.get_height() for b in portfolio] == [0.05, -0.02, 0.01]
    assert [b.get_height() for b in benchmark] == [0.03, 0.00, -0.01]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2024Q1", "2024Q2", "2024Q3"]
    assert (portfolio.get_label(), benchmark.get_label()) == ("portfolio", "benchmark")


def test_the_sector_chart_stacks_each_sectors_weight_and_leaves_cash_white():
    exposure = pl.DataFrame(
        {
            "date": [date(2024, 1, 2), date(2024, 1, 2), date(2024, 4, 1)],
            "sector": ["Energy", "Financials", "Energy"],
            "weight": [0.3, 0.5, 0.9],
        }
    )
    ax = sector_exposure_figure(exposure).axes[0]
    energy, financials = ax.collections
    assert (energy.get_label(), financials.get_label()) == ("Energy", "Financials")
    top_of_stack = financials.get_paths()[0].vertices[:, 1].max()
    assert top_of_stack == pytest.approx(0.9)  # 0.3 + 0.5 on the first date, 0.9 on the second
    assert energy.get_paths()[0].vertices[:, 1].max() == pytest.approx(0.9)
    assert ax.get_ylim() == (0.0, 1.0)


def test_the_benchmarks_chart_draws_one_line_per_benchmark():
    curves = pl.DataFrame(
        {
            "date": [DAYS[0], DAYS[1], DAYS[0], DAYS[1]],
            "benchmark": ["equal_weight", "equal_weight", "SPY", "SPY"],
            "equity": [1.01, 1.02, 1.0, 0.99],
        }
    )
    ax = benchmarks_figure(curves).axes[0]
    lines = _lines(ax)
    assert lines["equal_weight"].get_ydata().tolist() == [1.01, 1.02]
    assert lines["SPY"].get_ydata().tolist() == [1.0, 0.99]


def test_the_research_equity_chart_draws_each_strategy_and_the_earliest_benchmark():
    daily = pl.DataFrame(
        {
            "strategy": ["late", "late", "early", "early", "early"],
            "date": [DAYS[1], DAYS[2], DAYS[0], DAYS[1], DAYS[2]],
            "equity": [1.0, 1.1, 1.0, 0.9, 0.95],
            "benchmark_equity": [1.0, 1.05, 1.0, 1.01, 1.02],
        }
    )
    ax = equity_curves_figure(daily).axes[0]
    lines = _lines(ax)
    assert lines["early"].get_ydata().tolist() == [1.0, 0.9, 0.95]
    assert lines["late"].get_ydata().tolist() == [1.0, 1.1]
    assert lines["benchmark"].get_ydata().tolist() == [1.0, 1.01, 1.02]  # the earliest's


def test_the_ic_chart_bars_are_the_mean_ic_with_two_standard_errors():
    summary = pl.DataFrame(
        {
            "factor": ["roe", "pe"],
            "mean_ic": [0.05, -0.02],
            "ic_std": [0.1, 0.2],
            "n_periods": [25, 16],
        }
    )
    ax = ic_summary_figure(summary).axes[0]
    [bars] = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert [b.get_width() for b in bars.patches] == [-0.02, 0.05]  # sorted by mean IC
    assert [t.get_text() for t in ax.get_yticklabels()] == ["pe", "roe"]
    # error bar half-widths: 2 * std / sqrt(n)
    segments = bars.errorbar.lines[2][0].get_segments()
    assert [s[1][0] - s[0][0] for s in segments] == pytest.approx(
        [2 * 2 * 0.2 / 4, 2 * 2 * 0.1 / 5]
    )
    assert ax.get_xlabel().startswith("mean Spearman IC")


def test_the_quantile_chart_bars_are_mean_forward_returns_per_factor_and_quantile():
    quantiles = pl.DataFrame(
        {
            "factor": ["roe"] * 4,
            "rebalance_date": [DAYS[0], DAYS[0], DAYS[2], DAYS[2]],
            "quantile": [1, 2, 1, 2],
            "mean_forward_return": [0.01, 0.03, -0.01, 0.05],
        }
    )
    fig = quantile_returns_figure(quantiles)
    q1, q2 = fig.axes[0].containers
    assert q1.patches[0].get_height() == pytest.approx(0.0)  # (0.01 - 0.01) / 2
    assert q2.patches[0].get_height() == pytest.approx(0.04)
    assert (q1.get_label(), q2.get_label()) == ("Q1", "Q2")


def test_the_luck_chart_marks_the_strategy_sharpe_among_the_random_ones():
    luck = pl.DataFrame(
        {
            "strategy": ["value"],
            "sharpe": [1.2],
            "sharpe_percentile": [95.0],
            "oracle_sharpe": [3.0],
        }
    )
    random = {"value": pl.DataFrame({"sharpe": [0.1, 0.2, 0.3, float("nan"), None]})}
    ax = luck_figure(luck, random).axes[0]
    assert sum(p.get_height() for p in ax.patches) == 3  # NaN and null are not drawn
    [marker] = ax.get_lines()
    assert marker.get_xdata()[0] == 1.2
    assert ax.get_title() == "value: pct 95"
    assert ax.get_xlabel() == "Sharpe (oracle 3.0)"


def test_the_tilts_chart_draws_each_tilt_it_has_and_the_beta_below():
    from quant_pipeline.core.reporting.research_charts import tilts_figure

    exposures = pl.DataFrame(
        {
            "rebalance_date": [date(2024, 1, 2), date(2024, 4, 1)],
            "size_tilt": [-1.0, -0.5],
            "value_tilt": [0.2, 0.4],
            "momentum_tilt": [None, None],  # nothing to draw
            "beta": [0.9, 1.2],
        }
    )
    top, bottom = tilts_figure(exposures).axes
    lines = {k: v for k, v in _lines(top).items() if not k.startswith("_")}  # not the 0 line
    assert set(lines) == {"size", "value"}
    assert list(lines["size"].get_ydata()) == [-1.0, -0.5]
    assert list(lines["value"].get_ydata()) == [0.2, 0.4]
    assert list(_lines(bottom)["beta"].get_ydata()) == [0.9, 1.2]
    assert bottom.get_ylabel() == "ex-ante beta"

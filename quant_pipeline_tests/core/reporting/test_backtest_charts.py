"""Charts: PNG bytes without pyplot state; the numbers behind them on tiny frames."""

from __future__ import annotations

import base64
import io
import sys
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from PIL import Image

from quant_pipeline.core.backtest.metrics import rolling_sharpe
from quant_pipeline.core.reporting.backtest_charts import (
    benchmarks_png,
    drawdown_png,
    equity_chart_figure,
    equity_chart_png,
    md_image,
    monthly_heatmap_png,
    quarterly_returns_png,
    rolling_sharpe_png,
    sector_exposure_png,
    sharpe_lines,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def daily() -> pl.DataFrame:
    rng = np.random.default_rng(7)
    n = 400
    portfolio = rng.normal(0.0005, 0.01, n)
    benchmark = rng.normal(0.0003, 0.008, n)
    equity = np.cumprod(1 + portfolio)
    return pl.DataFrame(
        {
            "date": [date(2019, 12, 2) + timedelta(days=i) for i in range(n)],
            "portfolio_return": portfolio,
            "benchmark_return": benchmark,
            "equity": equity,
            "benchmark_equity": np.cumprod(1 + benchmark),
            "drawdown": equity / np.maximum.accumulate(equity) - 1,
        }
    )


def test_charts_are_png_bytes(daily):
    for png in (
        equity_chart_png(daily, "value strategy"),
        monthly_heatmap_png(daily),
        rolling_sharpe_png(daily, window=60),
    ):
        assert png.startswith(PNG_SIGNATURE)
        assert len(png) > 1000


def test_charts_leave_no_pyplot_figures_behind(daily):
    equity_chart_png(daily, "t")
    pyplot = sys.modules.get("matplotlib.pyplot")
    assert pyplot is None or pyplot.get_fignums() == []


def test_equity_chart_accepts_a_missing_benchmark(daily):
    no_bench = daily.with_columns(pl.lit(None, dtype=pl.Float64).alias("benchmark_equity"))
    assert equity_chart_png(no_bench, "t").startswith(PNG_SIGNATURE)


def test_md_image_inlines_the_png_as_a_data_uri(daily):
    png = equity_chart_png(daily, "t")
    text = md_image(png, "equity [value]")
    prefix = "![equity (value)](data:image/png;base64,"
    assert text.startswith(prefix) and text.endswith(")")
    assert base64.b64decode(text[len(prefix) : -1]) == png


def test_md_image_rejects_bytes_that_are_not_png():
    with pytest.raises(ValueError, match="PNG"):
        md_image(b"GIF89a", "x")


def test_rolling_sharpe_is_annualised_mean_over_std_of_the_window():
    frame = pl.DataFrame(
        {
            "date": [date(2020, 1, i) for i in range(1, 5)],
            "portfolio_return": [0.01, 0.03, 0.02, 0.04],
            "benchmark_return": [0.0, 0.0, 0.0, 0.0],
        }
    )
    out = sharpe_lines(frame, window=2)
    # Window (0.01, 0.03): mean 0.02, sample std sqrt(2)*0.01 -> sqrt(2) * sqrt(252).
    # (0.03, 0.02): mean 0.025, std 0.01/sqrt(2) -> 2.5 * sqrt(2) * sqrt(252).
    # (0.02, 0.04): mean 0.03, std sqrt(2)*0.01 -> 1.5 * sqrt(2) * sqrt(252).
    root = np.sqrt(2) * np.sqrt(252)
    assert out["portfolio_sharpe"][0] is None
    assert out["portfolio_sharpe"].to_list()[1:] == pytest.approx([root, 2.5 * root, 1.5 * root])
    # A constant window has no Sharpe ratio: null, as in the metrics table (it used to be the
    # NaN of 0 / 0 here, which the chart drew as a gap and a table would not have shown).
    assert out["benchmark_sharpe"].to_list() == [None, None, None, None]


def test_the_rolling_sharpe_chart_draws_the_numbers_of_metrics_rolling_sharpe(daily):
    lines = sharpe_lines(daily, window=60)
    table = rolling_sharpe(daily, window=60)
    assert lines["portfolio_sharpe"].to_list() == table["rolling_sharpe"].to_list()
    bench = rolling_sharpe(daily, window=60, returns_col="benchmark_return")
    assert lines["benchmark_sharpe"].to_list() == bench["rolling_sharpe"].to_list()


def test_report_charts_are_png_bytes(daily):
    quarterly = pl.DataFrame(
        {
            "quarter": ["2020Q1", "2020Q2", "2020Q3"],
            "portfolio_return": [0.05, -0.02, 0.03],
            "benchmark_return": [0.04, -0.01, 0.0],
        }
    )
    exposure = pl.DataFrame(
        {
            "date": [date(2020, 1, 2), date(2020, 1, 2), date(2020, 4, 1)],
            "sector": ["Energy", "Utilities", "Energy"],
            "weight": [0.6, 0.4, 0.97],
        }
    )
    curves = pl.DataFrame(
        {
            "date": [date(2020, 1, 2), date(2020, 1, 3)] * 2,
            "benchmark": ["equal_weight"] * 2 + ["cap_weight"] * 2,
            "equity": [1.0, 1.01, 1.0, 0.99],
        }
    )
    for png in (
        drawdown_png(daily),
        quarterly_returns_png(quarterly),
        sector_exposure_png(exposure),
        sector_exposure_png(exposure.head(2)),  # a single rebalance still draws
        benchmarks_png(curves),
    ):
        assert png.startswith(PNG_SIGNATURE)
        assert len(png) > 1000


def test_the_fast_compression_keeps_every_pixel_of_the_default_one(daily):
    fig = equity_chart_figure(daily, "value strategy")
    fast = equity_chart_png(daily, "value strategy")
    default = io.BytesIO()
    fig.savefig(default, format="png", dpi=100)  # Pillow's default zlib level
    a, b = Image.open(io.BytesIO(fast)), Image.open(default)
    assert a.size == b.size == (1000, 600)
    assert a.tobytes() == b.tobytes()

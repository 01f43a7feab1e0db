"""Tear sheet: one self-contained HTML page with every metric, the charts and the tables."""

from __future__ import annotations

import base64
import re
import struct
import zlib
from datetime import date, timedelta

import polars as pl
import pytest

from quant_pipeline.core.backtest.metrics import (
    METRIC_KINDS,
    MetricsInputError,
    performance_metrics,
)
from quant_pipeline.core.reporting.tearsheet import (
    TRADE_ROWS_SHOWN,
    format_metric_value,
    metric_label,
    render_tearsheet,
)


def one_pixel_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit RGB
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@pytest.fixture
def daily() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "date": [date(2021, 1, 28), date(2021, 1, 29), date(2021, 2, 1), date(2021, 2, 2)],
            "portfolio_return": [0.01, -0.02, 0.03, 0.0],
            "benchmark_return": [0.0, -0.01, 0.02, 0.01],
            "turnover": [1.0, 0.0, 0.0, 0.5],
            "costs": [0.001, 0.0, 0.0, 0.0005],
        }
    )


def make_trades(n: int) -> pl.DataFrame:
    start = date(2021, 1, 1)
    return pl.DataFrame(
        {
            "ticker": [f"T{i:03d}" for i in range(n)],
            "entry_date": [start + timedelta(days=i) for i in range(n)],
            "exit_date": [start + timedelta(days=i + 30) for i in range(n)],
            "entry_price": [10.0] * n,
            "exit_price": [11.0] * n,
            "return": [0.1 if i % 2 else -0.05 for i in range(n)],
            "sector": ["Energy"] * n,
        }
    )


@pytest.fixture
def page(daily) -> str:
    trades = make_trades(4)
    strat = performance_metrics(daily, trades, capital=1_000_000.0)
    bench = performance_metrics(daily, returns_col="benchmark_return")
    metrics = pl.concat(
        [
            strat.with_columns(strategy=pl.lit("value")),
            bench.with_columns(strategy=pl.lit("benchmark")),
        ]
    ).select("strategy", "metric", "value")
    quarterly = pl.DataFrame(
        {
            "quarter": ["2021Q1"],
            "portfolio_return": [0.0189],
            "benchmark_return": [0.0199],
            "excess_return": [-0.001],
        }
    )
    return render_tearsheet(
        "value",
        metrics,
        daily,
        trades,
        quarterly,
        {"Equity curve": one_pixel_png()},
        labels={"source": "demo", "note": "<b>bold</b> & co"},
    )


def test_tearsheet_shows_every_metric_name(page):
    for metric in METRIC_KINDS:
        assert f"<code>{metric}</code>" in page, metric


def test_tearsheet_embeds_the_chart_as_a_png_data_uri(page):
    encoded = base64.b64encode(one_pixel_png()).decode("ascii")
    assert f'src="data:image/png;base64,{encoded}"' in page
    assert "<figcaption>Equity curve</figcaption>" in page


def test_tearsheet_is_self_contained(page):
    assert re.search(r"https?:|//[a-z0-9]", page, flags=re.IGNORECASE) is None
    assert "<script" not in page and "<link" not in page
    assert re.findall(r'src="([^"]*)"', page) == [
        "data:image/png;base64," + base64.b64encode(one_pixel_png()).decode("ascii")
    ]


def test_tearsheet_formats_fractions_as_percentages(page):
    # max drawdown -0.02 -> -2.00%; trades are a count, absent (a dash) for the benchmark
    assert re.search(r"<code>max_drawdown</code></td><td>-2\.00%</td>", page)
    assert re.search(r"<code>total_trades</code></td><td>4</td><td>\u2014</td>", page)
    # net profit: 1e6 * (1.01 * 0.98 * 1.03 * 1.00 - 1) = 1e6 * 0.019494; none for the benchmark
    assert "<code>net_profit</code></td><td>19,494.00</td><td>\u2014</td>" in page


def test_tearsheet_has_monthly_quarterly_trade_and_label_tables(page):
    # January: 1.01 * 0.98 - 1 = -1.02%; February: 1.03 * 1.00 - 1 = 3.00%
    assert "-1.02%</td>" in page and "3.00%</td>" in page
    assert "2021Q1" in page and "-0.10%" in page
    assert "T003" in page and "4 trades." in page
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in page, "labels are escaped, not injected"


def test_long_trade_lists_show_the_first_and_last_rows(daily):
    n = 2 * TRADE_ROWS_SHOWN + 7
    page = render_tearsheet("value", performance_metrics(daily), daily, make_trades(n), None, {})
    assert "T000" in page and f"T{TRADE_ROWS_SHOWN - 1:03d}" in page
    assert f"T{TRADE_ROWS_SHOWN:03d}" not in page, "the middle rows are left out"
    assert f"T{n - 1:03d}" in page
    assert "\u2026 7 trades \u2026" in page


def test_chart_that_is_not_png_is_rejected(daily):
    with pytest.raises(MetricsInputError, match="chart 'equity' is not PNG"):
        render_tearsheet("value", performance_metrics(daily), daily, None, None, {"equity": b"x"})


@pytest.mark.parametrize(
    ("metric", "value", "text"),
    [
        ("cagr", 0.12345, "12.35%"),
        ("sharpe_ratio", 1.2345, "1.23"),
        ("max_drawdown_duration_days", 40.0, "40"),
        ("annual_variance", 0.08316, "0.0832"),
        ("net_profit", 12345.678, "12,345.68"),
        ("beta", None, "\u2014"),
        ("beta", float("nan"), "\u2014"),
    ],
)
def test_metric_values_are_formatted_for_people(metric, value, text):
    assert format_metric_value(metric, value) == text


def test_metric_labels_read_as_words():
    assert metric_label("sharpe_ratio") == "Sharpe ratio"
    assert metric_label("cagr") == "CAGR"


def test_tearsheet_shows_the_strategy_against_each_benchmark(daily):
    relative = pl.DataFrame(
        {
            "strategy": ["value"] * 4,
            "benchmark": ["equal_weight", "equal_weight", "SPY", "SPY"],
            "metric": ["beta", "excess_cagr"] * 2,
            "value": [1.1, 0.0123, 0.9, -0.02],
        }
    )
    page = render_tearsheet(
        "value",
        pl.DataFrame({"metric": ["cagr"], "value": [0.1]}),
        daily,
        None,
        None,
        {},
        relative=relative,
    )
    assert "<h2>Against each benchmark</h2>" in page
    assert "<th>equal_weight</th><th>SPY</th>" in page
    assert "<td>1.10</td><td>0.90</td>" in page  # beta as a ratio
    assert "<td>1.23%</td><td>-2.00%</td>" in page  # excess CAGR as a percentage


def test_a_blend_tear_sheet_shows_each_sleeve_and_its_contribution(daily):
    sleeves = pl.DataFrame(
        {
            "sleeve": ["momentum", "value"],
            "weight": [0.6, 0.4],
            "sleeve_return": [0.5, 0.25],
            # 0.6 x 0.5 + 0.4 x 0.25 = 0.40 without re-weighting drift
            "contribution": [0.3, 0.1],
            "blend_return": [0.4, 0.4],
        }
    )
    page = render_tearsheet(
        "blend",
        pl.DataFrame({"metric": ["cagr"], "value": [0.1]}),
        daily,
        None,
        None,
        {},
        sleeves=sleeves,
    )
    assert "<h2>Sleeves</h2>" in page
    assert page.index("<h2>Sleeves</h2>") < page.index("<h2>Monthly returns</h2>")
    for name in ("momentum", "value", "contribution"):
        assert name in page.split("<h2>Sleeves</h2>")[1]
    plain = render_tearsheet(
        "value", pl.DataFrame({"metric": ["cagr"], "value": [0.1]}), daily, None, None, {}
    )
    assert "<h2>Sleeves</h2>" not in plain


def test_a_position_held_through_a_suspect_move_is_named_in_the_tear_sheet(daily):
    held = pl.DataFrame(
        {
            "strategy": ["value"],
            "ticker": ["BAX"],
            "entry_date": [date(2015, 4, 1)],
            "exit_date": [date(2015, 10, 1)],
            "date": [date(2015, 7, 1)],
            "size": [-0.4443],
        }
    )
    metrics = pl.DataFrame({"metric": ["cagr"], "value": [0.1]})
    page = render_tearsheet("value", metrics, daily, None, None, {}, suspect_moves=held)
    section = page.split("<h2>Suspect moves held</h2>")[1].split("<h2>")[0]
    assert "1 one-day moves with no corporate action on file" in section
    for text in ("BAX", "2015-07-01", "-44.43%", "2015-04-01", "2015-10-01"):
        assert text in section, text
    plain = render_tearsheet("value", metrics, daily, None, None, {}, suspect_moves=held.head(0))
    assert "Suspect moves held" not in plain

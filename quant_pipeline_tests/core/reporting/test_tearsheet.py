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
    ExposureSection,
    MultipleTestingSection,
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
    assert re.search(r"<code>closed_trades</code></td><td>4</td><td>\u2014</td>", page)
    # net profit: 1e6 * (1.01 * 0.98 * 1.03 * 1.00 - 1) = 1e6 * 0.019494; none for the benchmark
    assert "<code>net_profit_currency</code></td><td>19,494.00</td><td>\u2014</td>" in page


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
        ("net_profit_currency", 12345.678, "12,345.68"),
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


def test_the_tear_sheet_shows_lean_statistics_as_lean_prints_them(daily):
    lean = pl.DataFrame(
        {"statistic": ["Net Profit", "Lowest Capacity Asset"], "display": ["4.000%", "B"]}
    )
    page = render_tearsheet(
        "value",
        pl.DataFrame({"metric": ["cagr"], "value": [0.1]}),
        daily,
        None,
        None,
        {},
        lean=lean,
    )
    assert "<h2>LEAN statistics</h2>" in page
    assert '<tr><td class="name">Net Profit</td><td>4.000%</td></tr>' in page
    assert '<tr><td class="name">Lowest Capacity Asset</td><td>B</td></tr>' in page
    without = render_tearsheet(
        "value", pl.DataFrame({"metric": ["cagr"], "value": [0.1]}), daily, None, None, {}
    )
    assert "LEAN statistics" not in without


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


def _exposure_section() -> ExposureSection:
    days = [date(2021, 1, 4), date(2021, 4, 1)]
    exposures = pl.DataFrame(
        {
            "rebalance_date": days,
            "n_names": [20, 20],
            "beta": [0.9, 1.1],
            "beta_coverage": [1.0, 1.0],
            "size_tilt": [-1.2, -0.8],
            "value_tilt": [0.3, 0.5],
            "momentum_tilt": [0.1, None],
            "quality_tilt": [0.4, 0.6],
        }
    )
    sectors = pl.DataFrame(
        {
            "rebalance_date": [days[1], days[1], days[0]],
            "sector": ["Energy", "Utilities", "Energy"],
            "portfolio_weight": [0.6, 0.4, 1.0],
            "universe_weight": [0.25, 0.75, 0.3],
            "active_weight": [0.35, -0.35, 0.7],
        }
    )
    common = {"excess_return": 0.12, "r_squared": 0.8123, "adj_r_squared": 0.81,
              "n_days": 250, "start": days[0], "end": date(2021, 12, 31)}  # fmt: skip
    attribution = pl.DataFrame(
        [
            {"term": "market", "kind": "market", "coefficient": 0.95, "t_stat": 40.0,
             "annual_mean": 0.08, "contribution": 0.076, **common},
            {"term": "alpha", "kind": "alpha", "coefficient": 0.0001, "t_stat": 2.5,
             "annual_mean": None, "contribution": 0.0252, **common},
            {"term": "value", "kind": "factor", "coefficient": 0.3, "t_stat": 3.21,
             "annual_mean": 0.0626, "contribution": 0.01878, **common},
        ]
    )  # fmt: skip
    return ExposureSection(exposures, sectors, attribution, one_pixel_png())


def _sweep_section() -> MultipleTestingSection:
    table = pl.DataFrame(
        {
            "variant": ["s__v000", "s__v001", "s__v002"],
            "top_n": [10, 20, 30],
            "sharpe_ratio": [0.8, 1.4, 1.1],
            "sharpe_ratio_shared_dates": [0.7, 1.3, 1.0],
            "deflated_sharpe_ratio": [0.4, 0.912, 0.7],
            "expected_maximum_sharpe": [0.55] * 3,
            "pbo": [0.2143] * 3,
            "n_variants": [3] * 3,
        }
    )
    return MultipleTestingSection("s_sweep", table, ("top_n",), one_pixel_png(), "heat")


def test_the_exposures_section_shows_beta_tilts_sectors_and_the_attribution(daily):
    page = render_tearsheet("value", performance_metrics(daily), daily, None, None, {},
                            exposures=_exposure_section())  # fmt: skip
    section = page[page.index("<h2>Exposures</h2>") :]
    # beta: latest 1.10 (2021-04-01), mean 1.00, min 0.90, max 1.10
    assert re.search(r"beta</td><td>1\.10</td><td>1\.00</td><td>0\.90</td><td>1\.10</td>", section)
    assert "latest (2021-04-01)" in section
    assert re.search(r"quality_tilt</td><td>0\.60</td><td>0\.50</td>", section)
    assert re.search(r"momentum_tilt</td><td>\u2014</td><td>0\.10</td>", section)  # no value
    # the last rebalance's sectors only, largest first, as percentages
    assert re.search(r"Energy</td><td>60\.00%</td><td>25\.00%</td><td>35\.00%</td>", section)
    assert section.index("Energy") < section.index("Utilities")
    assert "100.00%" not in section  # the older rebalance is not shown
    # attribution: alpha first, then market and the factors; contributions as percentages
    assert "R² 0.812" in section and "250 days" in section and "12.00%" in section
    assert re.search(
        r"alpha</td><td>0\.000100</td><td>2\.50</td><td>\u2014</td><td>2\.52%", section
    )
    assert re.search(r"value</td><td>0\.300</td><td>3\.21</td><td>6\.26%</td><td>1\.88%", section)
    assert section.index(">alpha<") < section.index(">market<") < section.index(">value<")
    assert "Style tilts and beta over time" in section


def test_a_missing_or_stale_research_part_is_said_not_shown(daily):
    stale = ExposureSection(missing=("Returns-based attribution: left out, stale.",))
    unrun = MultipleTestingSection("s_sweep", pl.DataFrame(), ("top_n",), missing="not run yet")
    page = render_tearsheet("value", performance_metrics(daily), daily, None, None, {},
                            exposures=stale, multiple_testing=unrun)  # fmt: skip
    assert "<h2>Exposures</h2><p>Returns-based attribution: left out, stale.</p>" in page
    assert "<h2>Multiple testing</h2><p>not run yet</p>" in page


def test_the_multiple_testing_section_names_the_best_variant_its_dsr_and_pbo(daily):
    page = render_tearsheet("value", performance_metrics(daily), daily, None, None, {},
                            multiple_testing=_sweep_section())  # fmt: skip
    section = page[page.index("<h2>Multiple testing</h2>") :]
    assert "variants tried</td><td>3</td>" in section
    assert "best variant</td><td>s__v001 (top_n 20)</td>" in section
    assert "Sharpe ratio</td><td>1.40</td>" in section
    assert "every variant has</td><td>1.30</td>" in section
    assert "unskilled variants</td><td>0.55</td>" in section
    assert "(DSR)</td><td>0.912</td>" in section and "CSCV)</td><td>0.214</td>" in section
    assert '<a href="#sweep-heatmap">' in section and '<figure id="sweep-heatmap">' in section
    assert re.search(r"https?:", page) is None  # the link stays inside the page


def test_pages_without_research_have_no_research_sections(page):
    assert "<h2>Exposures</h2>" not in page and "<h2>Multiple testing</h2>" not in page

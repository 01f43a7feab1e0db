"""The HTML tear sheet of one strategy: a single self-contained page, no network needed to view.

Everything is inline: CSS in a ``<style>`` element, charts (PNG bytes made by
``core/reporting/backtest_charts.py``) as base64 ``data:`` URIs, no script, no link to any other
resource. The monthly returns table is coloured cell by cell in CSS, so it needs no chart of its
own. Metric definitions live in ``docs/metrics.md``; here they are only formatted (fractions shown
as percentages).
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import polars as pl

from quant_pipeline.core.backtest.metrics import METRIC_KINDS, MetricsInputError, monthly_returns
from quant_pipeline.core.data.frames import require_columns

TRADE_ROWS_SHOWN = 50  # first and last rows of the trade table
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_LABELS = {
    "cagr": "CAGR",
    "value_at_risk_95": "Value at risk (95%, daily)",
    "max_drawdown_duration_days": "Max drawdown duration (trading days)",
    "win_rate_days": "Winning days",
    "probabilistic_sharpe_ratio": "Probabilistic Sharpe ratio (vs 0)",
}
_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { padding: 0.25em 0.6em; border-bottom: 1px solid #eee; text-align: right; }
th { background: #f4f4f4; } td.name, th.name { text-align: left; }
code { color: #666; font-size: 0.85em; }
figure { margin: 1em 0; } figure img { max-width: 100%; }
figcaption { color: #666; font-size: 0.85em; }
tr.gap td { text-align: center; color: #666; font-style: italic; }
"""


def metric_label(metric: str) -> str:
    """A person's name for a metric: ``sharpe_ratio`` -> ``Sharpe ratio``."""
    if metric in _LABELS:
        return _LABELS[metric]
    text = metric.replace("_", " ")
    return text[:1].upper() + text[1:]


def format_metric_value(metric: str, value: float | None) -> str:
    """``value`` as a person reads it: fractions as percentages (0.1234 -> '12.34%'), ratios with
    two decimals, day and trade counts as whole numbers; null or NaN as an em dash."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "\u2014"
    kind = METRIC_KINDS.get(metric, "decimal")
    if kind == "percent":
        return f"{value * 100:,.2f}%"
    if kind == "ratio":
        return f"{value:,.2f}"
    if kind in ("days", "count"):
        return f"{value:,.0f}"
    if kind == "money":
        return f"{value:,.2f}"
    return f"{value:,.4f}"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _percent(value: float | None) -> str:
    return format_metric_value("total_return", value)


def _cell(value: object, column: str) -> str:
    if value is None:
        return "\u2014"
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, float):
        if column in ("return", "weight", "fees") or column.endswith("_return"):
            return _percent(value)
        return f"{value:,.2f}"
    return str(value)


def _table(frame: pl.DataFrame, gap_after: int | None = None, gap_text: str = "") -> str:
    """A plain HTML table of ``frame``; a gap row after row ``gap_after`` when given."""
    text_cols = {c for c, t in frame.schema.items() if t == pl.String}
    head = "".join(
        f'<th class="name">{_e(c)}</th>' if c in text_cols else f"<th>{_e(c)}</th>"
        for c in frame.columns
    )
    rows = []
    for i, row in enumerate(frame.iter_rows()):
        cells = "".join(
            f'<td class="name">{_e(_cell(v, c))}</td>'
            if c in text_cols
            else f"<td>{_e(_cell(v, c))}</td>"
            for c, v in zip(frame.columns, row, strict=True)
        )
        rows.append(f"<tr>{cells}</tr>")
        if gap_after is not None and i == gap_after:
            rows.append(f'<tr class="gap"><td colspan="{frame.width}">{_e(gap_text)}</td></tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _metrics_section(metrics: pl.DataFrame, strategy: str) -> str:
    cols = ["metric", "value"]
    require_columns(metrics, cols, "metrics", MetricsInputError)
    if "strategy" in metrics.columns:
        # The strategy first, then whatever else is given (usually 'benchmark').
        others = [s for s in metrics["strategy"].unique(maintain_order=True) if s != strategy]
        columns = [strategy, *others]
        wide = metrics.pivot(on="strategy", index="metric", values="value", on_columns=columns)
    else:
        columns = [strategy]
        wide = metrics.select("metric", pl.col("value").alias(strategy))
    known = [m for m in METRIC_KINDS if m in wide["metric"]]
    extra = [m for m in wide["metric"].to_list() if m not in METRIC_KINDS]
    head = '<th class="name">metric</th>' + "".join(f"<th>{_e(c)}</th>" for c in columns)
    by_metric = {row["metric"]: row for row in wide.iter_rows(named=True)}
    rows = []
    for metric in known + extra:
        row = by_metric[metric]
        values = "".join(f"<td>{_e(format_metric_value(metric, row.get(c)))}</td>" for c in columns)
        rows.append(
            f'<tr><td class="name">{_e(metric_label(metric))} <code>{_e(metric)}</code></td>'
            f"{values}</tr>"
        )
    return (
        f"<h2>Metrics</h2><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _heat(value: float | None) -> str:
    """Background colour for a monthly return: green up, red down, saturating at +-10%."""
    if value is None:
        return ""
    strength = min(abs(value) / 0.10, 1.0)
    light = round(95 - 40 * strength)
    hue = 120 if value >= 0 else 0
    return f' style="background: hsl({hue}, 60%, {light}%)"'


def _monthly_section(daily: pl.DataFrame, returns_col: str) -> str:
    months = monthly_returns(daily, returns_col)
    years = (
        months.group_by("year")
        .agg(((1.0 + pl.col("return")).product() - 1.0).alias("year_return"))
        .sort("year")
    )
    by_key = {(y, m): r for y, m, r in months.iter_rows()}
    head = "<th>year</th>" + "".join(f"<th>{m}</th>" for m in _MONTHS) + "<th>Year</th>"
    rows = []
    for year, year_return in years.iter_rows():
        cells = []
        for month in range(1, 13):
            value = by_key.get((year, month))
            text = "" if value is None else _percent(value)
            cells.append(f"<td{_heat(value)}>{_e(text)}</td>")
        rows.append(
            f"<tr><td>{year}</td>{''.join(cells)}"
            f"<td{_heat(year_return)}><b>{_e(_percent(year_return))}</b></td></tr>"
        )
    return (
        "<h2>Monthly returns</h2><table><thead><tr>"
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _quarterly_section(quarterly: pl.DataFrame | None, strategy: str) -> str:
    if quarterly is None:
        return ""
    if "strategy" in quarterly.columns:
        quarterly = quarterly.filter(pl.col("strategy") == strategy).drop("strategy")
    if quarterly.height == 0:
        return "<h2>Quarterly summary</h2><p>No quarter.</p>"
    return f"<h2>Quarterly summary</h2>{_table(quarterly)}"


def _trades_section(trades: pl.DataFrame | None, strategy: str) -> str:
    if trades is None:
        return ""
    if "strategy" in trades.columns:
        trades = trades.filter(pl.col("strategy") == strategy).drop("strategy")
    n = trades.height
    if n == 0:
        return "<h2>Trades</h2><p>No trade.</p>"
    if n <= 2 * TRADE_ROWS_SHOWN:
        return f"<h2>Trades</h2><p>{n} trades.</p>{_table(trades)}"
    shown = pl.concat([trades.head(TRADE_ROWS_SHOWN), trades.tail(TRADE_ROWS_SHOWN)])
    hidden = n - 2 * TRADE_ROWS_SHOWN
    return f"<h2>Trades</h2><p>{n} trades: the first and last {TRADE_ROWS_SHOWN}.</p>" + _table(
        shown, gap_after=TRADE_ROWS_SHOWN - 1, gap_text=f"\u2026 {hidden} trades \u2026"
    )


def _figure(name: str, png: bytes, anchor: str | None = None) -> str:
    """A figure with ``png`` embedded as a data URI (``anchor``: its id, for in-page links)."""
    if not isinstance(png, (bytes, bytearray)) or not bytes(png).startswith(_PNG_SIGNATURE):
        raise MetricsInputError(
            f"chart {name!r} is not PNG bytes (it must start with the PNG signature)"
        )
    uri = "data:image/png;base64," + base64.b64encode(bytes(png)).decode("ascii")
    ident = f' id="{_e(anchor)}"' if anchor else ""
    return (
        f'<figure{ident}><img alt="{_e(name)}" src="{uri}"><figcaption>{_e(name)}</figcaption>'
        "</figure>"
    )


def _charts_section(charts: Mapping[str, bytes]) -> str:
    figures = [_figure(name, png) for name, png in charts.items()]
    return "<h2>Charts</h2>" + "".join(figures) if figures else ""


def _relative_section(relative: pl.DataFrame | None, strategy: str) -> str:
    """One column per benchmark: the strategy measured against it."""
    if relative is None:
        return ""
    if "strategy" in relative.columns:
        relative = relative.filter(pl.col("strategy") == strategy)
    if relative.height == 0:
        return ""
    names = relative["benchmark"].unique(maintain_order=True).to_list()
    wide = relative.pivot(on="benchmark", index="metric", values="value", on_columns=names)
    head = '<th class="name">metric</th>' + "".join(f"<th>{_e(n)}</th>" for n in names)
    rows = []
    for row in wide.iter_rows(named=True):
        metric = row["metric"]
        kind_of = "cagr" if metric.endswith(("_cagr", "_return")) else metric
        values = "".join(f"<td>{_e(format_metric_value(kind_of, row[n]))}</td>" for n in names)
        rows.append(
            f'<tr><td class="name">{_e(metric_label(metric))} <code>{_e(metric)}</code></td>'
            f"{values}</tr>"
        )
    return (
        "<h2>Against each benchmark</h2><table><thead><tr>"
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _sleeves_section(sleeves: pl.DataFrame | None) -> str:
    """A blend's attribution: each sleeve's weight, return and contribution to the blend."""
    if sleeves is None or sleeves.height == 0:
        return ""
    return (
        "<h2>Sleeves</h2><p>Contribution = the sleeve's profit in units of the starting capital; "
        "the contributions add up to the blend's return.</p>" + _table(sleeves)
    )


def _lean_section(lean: pl.DataFrame | None) -> str:
    """LEAN's statistics table (``backtest.lean_statistics``) as LEAN prints it."""
    if lean is None or lean.height == 0:
        return ""
    require_columns(lean, ["statistic", "display"], "lean", MetricsInputError)
    rows = "".join(
        f'<tr><td class="name">{_e(k)}</td><td>{_e(v)}</td></tr>'
        for k, v in lean.select("statistic", "display").iter_rows()
    )
    return (
        "<h2>LEAN statistics</h2><p>QuantConnect LEAN's summary table under its own names and "
        "definitions (docs/metrics.md, \u201cLEAN statistics\u201d).</p>"
        f"<table><tbody>{rows}</tbody></table>"
    )


def _labels_section(labels: Mapping[str, str] | None) -> str:
    if not labels:
        return ""
    rows = "".join(
        f'<tr><td class="name">{_e(k)}</td><td class="name">{_e(v)}</td></tr>'
        for k, v in labels.items()
    )
    return f"<h2>Labels</h2><table><tbody>{rows}</tbody></table>"


def _warning(labels: Mapping[str, str] | None) -> str:
    """A ``warning`` label (core.backtest.row_flags) repeated under the title, in bold."""
    if not labels or not labels.get("warning"):
        return ""
    return f'<p class="warning"><strong>Read with care: {_e(labels["warning"])}</strong></p>'


def _suspect_moves_section(held: pl.DataFrame | None) -> str:
    """The positions that earned a suspect move (``core.data.suspect_moves.held_through`` rows)."""
    if held is None or held.is_empty():
        return ""
    shown = held.select(
        "ticker",
        pl.col("date").alias("move date"),
        pl.col("size").alias("one_day_return"),
        "entry_date",
        "exit_date",
    )
    return (
        "<h2>Suspect moves held</h2><p>"
        f"{held.height} one-day moves with no corporate action on file were earned by this "
        "strategy's positions and taken as returns: a spin-off or share dividend would make them "
        "losses that never happened. See curated.suspect_moves; a corporate-actions file "
        "(docs/data_sources.md) corrects them.</p>" + _table(shown)
    )


@dataclass(frozen=True)
class ExposureSection:
    """The Exposures section of a strategy's page (research.exposures,
    research.sector_exposures and research.attribution rows of the strategy).

    ``exposures``: rebalance_date, n_names, beta, beta_coverage, the ``*_tilt`` columns;
    ``sectors``: rebalance_date, sector, portfolio_weight, universe_weight, active_weight;
    ``attribution``: term, kind, coefficient, t_stat, annual_mean, contribution, excess_return,
    r_squared, adj_r_squared, n_days, start, end (None: not computed); ``tilts_chart``: PNG of
    the tilts over time (None: no chart). ``missing``: why a part is not shown (stale or not
    computed), said on the page.
    """

    exposures: pl.DataFrame | None = None
    sectors: pl.DataFrame | None = None
    attribution: pl.DataFrame | None = None
    tilts_chart: bytes | None = None
    missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class MultipleTestingSection:
    """The Multiple-testing section of a swept strategy's page: ``table`` is the sweep's
    research.sweep rows (variant, parameters, sharpe_ratio, sharpe_ratio_shared_dates,
    deflated_sharpe_ratio, expected_maximum_sharpe, pbo, n_variants), ``heatmap`` its heatmap
    PNG (embedded; the page links to it), ``parameters`` the grid's parameter names;
    ``missing`` says why no numbers are shown."""

    sweep: str
    table: pl.DataFrame
    parameters: tuple[str, ...]
    heatmap: bytes | None = None
    heatmap_title: str = ""
    missing: str | None = None  # why the numbers are not shown (not run yet, or stale)


TILT_ROWS = ("beta", "size_tilt", "value_tilt", "momentum_tilt", "quality_tilt")


def _ratio(value: float | None, digits: int = 2) -> str:
    if value is None or not math.isfinite(value):
        return "\u2014"
    return f"{value:,.{digits}f}"


def _tilts_table(exposures: pl.DataFrame) -> str:
    frame = exposures.sort("rebalance_date")
    last = frame.row(frame.height - 1, named=True)
    head = (
        f'<tr><th class="name">exposure</th><th>latest ({_e(last["rebalance_date"])})</th>'
        "<th>mean</th><th>min</th><th>max</th></tr>"
    )
    rows = []
    for column in TILT_ROWS:
        if column not in frame.columns:
            continue
        x = frame[column].cast(pl.Float64)
        stats = [last[column], x.mean(), x.min(), x.max()]
        cells = "".join(f"<td>{_ratio(v)}</td>" for v in stats)
        rows.append(f'<tr><td class="name">{_e(column)}</td>{cells}</tr>')
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _sectors_table(sectors: pl.DataFrame) -> str:
    last = sectors["rebalance_date"].max()
    latest = sectors.filter(pl.col("rebalance_date") == last).sort(
        "portfolio_weight", descending=True
    )
    rows = "".join(
        f'<tr><td class="name">{_e(r["sector"])}</td><td>{_percent(r["portfolio_weight"])}</td>'
        f"<td>{_percent(r['universe_weight'])}</td><td>{_percent(r['active_weight'])}</td></tr>"
        for r in latest.iter_rows(named=True)
    )
    return (
        f"<p>Sector weights after the last rebalance ({_e(last)}), beside the universe's "
        'market-cap weights.</p><table><thead><tr><th class="name">sector</th>'
        "<th>portfolio</th><th>universe</th><th>active</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _attribution_table(attribution: pl.DataFrame) -> str:
    first = attribution.row(0, named=True)
    order = {"alpha": 0, "market": 1, "factor": 2, "sector": 3}
    rows = []
    for r in sorted(attribution.iter_rows(named=True), key=lambda r: order[r["kind"]]):
        coefficient = (
            f"{r['coefficient']:.6f}" if r["kind"] == "alpha" else _ratio(r["coefficient"], 3)
        )
        rows.append(
            f'<tr><td class="name">{_e(r["term"])}</td><td>{coefficient}</td>'
            f"<td>{_ratio(r['t_stat'])}</td><td>{_percent(r['annual_mean'])}</td>"
            f"<td>{_percent(r['contribution'])}</td></tr>"
        )
    return (
        f"<p>OLS of the daily excess return over {first['n_days']} days ({_e(first['start'])} "
        f"to {_e(first['end'])}): R² {_ratio(first['r_squared'], 3)}, adjusted "
        f"{_ratio(first['adj_r_squared'], 3)}. Annualised excess return "
        f"{_percent(first['excess_return'])} = the sum of the contributions (coefficient × the "
        "regressor's annualised mean; alpha: 252 × the daily intercept, the residual). Sector "
        "coefficients are held to a name-weighted sum of 0 (docs/metrics.md).</p>"
        '<table><thead><tr><th class="name">term</th><th>coefficient</th><th>t-stat</th>'
        "<th>regressor (annual)</th><th>contribution</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _exposures_section(section: ExposureSection | None) -> str:
    if section is None:
        return ""
    parts = ["<h2>Exposures</h2>"]
    parts += [f"<p>{_e(note)}</p>" for note in section.missing]
    if section.exposures is not None and section.exposures.height:
        parts.append(
            "<p>Ex-ante beta to the benchmark and style tilts (weighted z-scores of the "
            "holdings) over the rebalance dates.</p>" + _tilts_table(section.exposures)
        )
    if section.tilts_chart is not None:
        parts.append(_figure("Style tilts and beta over time", section.tilts_chart))
    if section.sectors is not None and section.sectors.height:
        parts.append(_sectors_table(section.sectors))
    if section.attribution is not None and section.attribution.height:
        parts.append("<h3>Returns-based attribution</h3>" + _attribution_table(section.attribution))
    return "".join(parts)


def _multiple_testing_section(section: MultipleTestingSection | None) -> str:
    if section is None:
        return ""
    if section.missing is not None or section.table.is_empty():
        return f"<h2>Multiple testing</h2><p>{_e(section.missing or 'No variant.')}</p>"
    table = section.table
    best = table.sort("sharpe_ratio", descending=True, nulls_last=True).row(0, named=True)
    params = ", ".join(f"{p} {best[p]}" for p in section.parameters if p in best)
    facts = [
        ("variants tried", f"{table.height}"),
        ("best variant", f"{best['variant']} ({params})"),
        ("best variant's Sharpe ratio", _ratio(best["sharpe_ratio"])),
        ("its Sharpe on the dates every variant has", _ratio(best["sharpe_ratio_shared_dates"])),
        (
            "expected maximum Sharpe of as many unskilled variants",
            _ratio(best["expected_maximum_sharpe"]),
        ),
        ("its deflated Sharpe ratio (DSR)", _ratio(best["deflated_sharpe_ratio"], 3)),
        ("probability of backtest overfitting (PBO, CSCV)", _ratio(best["pbo"], 3)),
    ]
    rows = "".join(f'<tr><td class="name">{_e(k)}</td><td>{_e(v)}</td></tr>' for k, v in facts)
    out = (
        f"<h2>Multiple testing</h2><p>This strategy was swept ({_e(section.sweep)}): the best "
        "of many variants looks better than it is. DSR is the probability that its true Sharpe "
        "beats the best of as many unskilled variants; PBO the share of train/test splits where "
        'the best in-sample variant falls below the median out of sample. <a href="#sweep-heatmap">'
        "The sweep heatmap</a> is below (and in the Dagster UI on asset research/sweep).</p>"
        f"<table><tbody>{rows}</tbody></table>"
    )
    if section.heatmap is not None:
        out += _figure(section.heatmap_title or "Sweep heatmap", section.heatmap, "sweep-heatmap")
    return out


def render_tearsheet(
    strategy: str,
    metrics: pl.DataFrame,
    daily: pl.DataFrame,
    trades: pl.DataFrame | None,
    quarterly: pl.DataFrame | None,
    charts: Mapping[str, bytes],
    labels: Mapping[str, str] | None = None,
    returns_col: str = "portfolio_return",
    relative: pl.DataFrame | None = None,
    sleeves: pl.DataFrame | None = None,
    lean: pl.DataFrame | None = None,
    suspect_moves: pl.DataFrame | None = None,
    exposures: ExposureSection | None = None,
    multiple_testing: MultipleTestingSection | None = None,
) -> str:
    """One strategy's tear sheet as a self-contained HTML document (the caller writes the file).

    * ``metrics``: ``metric, value`` (from ``performance_metrics``), or ``strategy, metric,
      value`` to show several columns side by side (``strategy`` first, e.g. then 'benchmark').
    * ``daily``: ``date, <returns_col>`` for one strategy (``backtest.daily``); gives the period
      shown and the monthly returns table.
    * ``trades``: ``backtest.trades`` rows (any columns; a ``strategy`` column is filtered to
      ``strategy``); the first and last ``TRADE_ROWS_SHOWN`` rows are shown.
    * ``quarterly``: ``backtest.quarterly`` rows or None.
    * ``charts``: title -> PNG bytes, embedded in order as base64 data URIs.
    * ``labels``: free key -> value pairs (run id, source, settings) shown as a table; a
      ``warning`` (never fired, mostly cash, too few trades) is also shown under the title.
    * ``relative``: ``[strategy,] benchmark, metric, value`` (``backtest.relative_metrics``),
      shown as one column per benchmark.
    * ``sleeves``: a blend's ``backtest.blend_attribution`` rows (without ``strategy``) or None.
    * ``lean``: ``statistic, display`` (``backtest.lean_statistics`` of the strategy) or None.
    * ``suspect_moves``: the strategy's positions held through a suspect move (ticker, date,
      size, entry_date, exit_date; ``core.data.suspect_moves.held_through``), named in their own
      section, or None.
    * ``exposures``: the Exposures section (beta, tilts, sector weights, attribution) or None.
    * ``multiple_testing``: the Multiple-testing section of a swept strategy or None.
    """
    if "strategy" in daily.columns:
        daily = daily.filter(pl.col("strategy") == strategy)
    dates = daily.select(pl.col("date").min().alias("first"), pl.col("date").max().alias("last"))
    first, last = dates.row(0) if daily.height else (None, None)
    sections: Sequence[str] = (
        _metrics_section(metrics, strategy),
        _relative_section(relative, strategy),
        _lean_section(lean),
        _sleeves_section(sleeves),
        _charts_section(charts),
        _exposures_section(exposures),
        _multiple_testing_section(multiple_testing),
        _monthly_section(daily, returns_col),
        _quarterly_section(quarterly, strategy),
        _trades_section(trades, strategy),
        _suspect_moves_section(suspect_moves),
        _labels_section(labels),
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(strategy)} \u2014 tear sheet</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(strategy)}</h1>"
        f'<p class="sub">{_e(first)} to {_e(last)}, {daily.height} trading days</p>'
        + _warning(labels)
        + "".join(sections)
        + "</body></html>\n"
    )

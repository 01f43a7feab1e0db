"""Charts of a backtest as PNG bytes, and a markdown wrapper for Dagster metadata.

Figures are built with ``matplotlib.figure.Figure`` and the Agg canvas directly: no pyplot, so
no global figure registry to leak and no display backend needed. Every function takes
``BacktestResult.daily`` (``date, portfolio_return, benchmark_return, equity,
benchmark_equity, drawdown``) and looks at nothing else.
"""

from __future__ import annotations

import base64
import io
import math

import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from quant_pipeline.core.backtest.metrics import monthly_returns, rolling_sharpe
from quant_pipeline.core.data.calendar import TRADING_DAYS_PER_YEAR
from quant_pipeline.core.data.frames import require_columns

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _plottable(frame: pl.DataFrame, columns: tuple[str, ...], what: str = "daily") -> None:
    """``frame`` has ``columns`` (core.data.frames.require_columns) and at least one row."""
    require_columns(frame, columns, what)
    if frame.height == 0:
        raise ValueError(f"{what} is empty: nothing to plot")


# zlib level 1 instead of Pillow's default 6: measured on a 10 x 6 inch equity chart, saving
# took 0.14 s instead of 0.22 s for a file 9% larger (105 vs 97 kB); a run saves ~75 charts.
PNG_COMPRESS_LEVEL = 1


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL})
    return buffer.getvalue()


def _figure(
    width: float,
    height: float,
    *,
    left: float = 0.8,
    right: float = 0.25,
    top: float = 0.45,
    bottom: float = 0.5,
    hspace: float | None = None,
) -> Figure:
    """A ``width`` x ``height`` inch Figure with fixed margins given in inches.

    Fixed margins instead of the constrained layout engine: a tear sheet draws about six charts
    per strategy, and the engine's extra layout pass cost about 40% of each chart's time."""
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(
        left=left / width,
        right=1.0 - right / width,
        top=1.0 - top / height,
        bottom=bottom / height,
        hspace=hspace,
    )
    return fig


def equity_chart_figure(daily: pl.DataFrame, title: str) -> Figure:
    """Equity vs benchmark equity on a log scale, with the drawdown below"""
    _plottable(daily, ("date", "equity", "benchmark_equity", "drawdown"))
    daily = daily.sort("date")
    dates = daily["date"].to_list()
    fig = _figure(10, 6, hspace=0.08)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    top.plot(dates, daily["equity"].to_numpy(), label="portfolio", color="tab:blue")
    bench = daily["benchmark_equity"]
    if bench.null_count() < bench.len():
        top.plot(dates, bench.to_numpy(), label="benchmark", color="tab:gray")
    top.set_yscale("log")
    plain = FuncFormatter(lambda y, _: f"{y:g}")
    top.yaxis.set_major_formatter(plain)
    top.yaxis.set_minor_formatter(plain)
    top.set_ylabel("equity (log)")
    top.set_title(title)
    top.legend(loc="upper left")
    top.grid(True, which="both", alpha=0.3)
    drawdown = daily["drawdown"].to_numpy()
    bottom.fill_between(dates, drawdown, 0.0, color="tab:red", alpha=0.4)
    bottom.set_ylabel("drawdown")
    bottom.grid(True, alpha=0.3)
    return fig


def equity_chart_png(daily: pl.DataFrame, title: str) -> bytes:
    """PNG bytes of :func:`equity_chart_figure`."""
    return _png(equity_chart_figure(daily, title))


def monthly_heatmap_figure(daily: pl.DataFrame) -> Figure:
    """Heatmap of monthly portfolio returns (years down, months across), as a Figure.

    The months are :func:`core.backtest.metrics.monthly_returns`, the same numbers as the
    tear sheet's monthly table and the ``best_month`` / ``worst_month`` metrics."""
    months = monthly_returns(daily, "portfolio_return").select("year", "month", "return")
    years = list(range(months["year"].min(), months["year"].max() + 1))
    grid = np.full((len(years), 12), np.nan)
    for year, month, value in months.iter_rows():
        grid[year - years[0], month - 1] = value
    finite = grid[np.isfinite(grid)]
    limit = float(np.max(np.abs(finite))) if finite.size else 0.0
    limit = limit if limit > 0 else 0.01
    fig = _figure(10, 0.45 * len(years) + 1.5, left=0.6, right=0.1)
    ax = fig.subplots()
    image = ax.imshow(grid, cmap="RdYlGn", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(12), _MONTHS)
    ax.set_yticks(range(len(years)), [str(y) for y in years])
    for (row, col), value in np.ndenumerate(grid):
        if math.isfinite(value):
            ax.text(col, row, f"{value:.1%}", ha="center", va="center", fontsize=7)
    ax.set_title("Monthly returns")
    fig.colorbar(image, ax=ax, format=lambda x, _: f"{x:.0%}")
    return fig


def monthly_heatmap_png(daily: pl.DataFrame) -> bytes:
    """PNG bytes of :func:`monthly_heatmap_figure`."""
    return _png(monthly_heatmap_figure(daily))


def sharpe_lines(daily: pl.DataFrame, window: int = TRADING_DAYS_PER_YEAR) -> pl.DataFrame:
    """``date, portfolio_sharpe, benchmark_sharpe``: the chart's two lines, each
    :func:`core.backtest.metrics.rolling_sharpe` (risk-free rate 0) of its column, so the chart
    and the tables agree: null until ``window`` days exist and where the window's returns are
    constant. A benchmark column with a null day gives no benchmark line (all null)."""
    _plottable(daily, ("date", "portfolio_return", "benchmark_return"))
    lines = rolling_sharpe(daily, window, "portfolio_return").rename(
        {"rolling_sharpe": "portfolio_sharpe"}
    )
    if daily["benchmark_return"].null_count():
        return lines.with_columns(benchmark_sharpe=pl.lit(None, pl.Float64))
    bench = rolling_sharpe(daily, window, "benchmark_return")
    return lines.with_columns(benchmark_sharpe=bench["rolling_sharpe"])


def rolling_sharpe_figure(daily: pl.DataFrame, window: int = TRADING_DAYS_PER_YEAR) -> Figure:
    """Rolling annualised Sharpe ratio of portfolio and benchmark"""
    values = sharpe_lines(daily, window)
    dates = values["date"].to_list()
    fig = _figure(10, 4)
    ax = fig.subplots()
    for column, label, color in (
        ("portfolio_sharpe", "portfolio", "tab:blue"),
        ("benchmark_sharpe", "benchmark", "tab:gray"),
    ):
        ax.plot(dates, values[column].to_numpy(), label=label, color=color)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_title(f"Rolling Sharpe ratio ({window} days)")
    ax.legend(loc="upper left")
    ax.grid(True, alpha=0.3)
    return fig


def rolling_sharpe_png(daily: pl.DataFrame, window: int = TRADING_DAYS_PER_YEAR) -> bytes:
    """PNG bytes of :func:`rolling_sharpe_figure`."""
    return _png(rolling_sharpe_figure(daily, window))


def drawdown_figure(daily: pl.DataFrame, title: str = "Drawdown") -> Figure:
    """Drawdown of the portfolio (and of the benchmark given ``benchmark_equity``), as a Figure.

    ``daily``: ``date, drawdown`` and optionally ``benchmark_equity`` (its drawdown is
    ``equity / running max - 1``, the same rule as the portfolio's).
    """
    _plottable(daily, ("date", "drawdown"))
    daily = daily.sort("date")
    dates = daily["date"].to_list()
    fig = _figure(10, 3.5)
    ax = fig.subplots()
    ax.fill_between(dates, daily["drawdown"].to_numpy(), 0.0, color="tab:red", alpha=0.4)
    ax.plot(dates, daily["drawdown"].to_numpy(), color="tab:red", linewidth=0.8, label="portfolio")
    if "benchmark_equity" in daily.columns and daily["benchmark_equity"].null_count() == 0:
        bench = daily["benchmark_equity"]
        ax.plot(
            dates,
            (bench / bench.cum_max() - 1.0).to_numpy(),
            color="tab:gray",
            linewidth=0.8,
            label="benchmark",
        )
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:.0%}"))
    ax.set_title(title)
    ax.legend(loc="lower left")
    ax.grid(True, alpha=0.3)
    return fig


def drawdown_png(daily: pl.DataFrame, title: str = "Drawdown") -> bytes:
    """PNG bytes of :func:`drawdown_figure`."""
    return _png(drawdown_figure(daily, title))


def quarterly_returns_figure(quarterly: pl.DataFrame, title: str = "Quarterly returns") -> Figure:
    """Bars of portfolio and benchmark return per quarter, as a Figure.

    ``quarterly``: ``quarter, portfolio_return, benchmark_return`` (``backtest.quarterly`` for
    one strategy), in the order given.
    """
    _plottable(quarterly, ("quarter", "portfolio_return", "benchmark_return"))
    labels = quarterly["quarter"].to_list()
    x = np.arange(len(labels))
    fig = _figure(10, 4, bottom=0.8)
    ax = fig.subplots()
    ax.bar(x - 0.2, quarterly["portfolio_return"].to_numpy(), 0.4, label="portfolio")
    ax.bar(
        x + 0.2, quarterly["benchmark_return"].to_numpy(), 0.4, label="benchmark", color="tab:gray"
    )
    step = max(1, len(labels) // 20)
    ax.set_xticks(x[::step], labels[::step], rotation=45, ha="right", fontsize=8)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:.0%}"))
    ax.set_title(title)
    ax.legend(loc="upper left")
    ax.grid(True, axis="y", alpha=0.3)
    return fig


def quarterly_returns_png(quarterly: pl.DataFrame, title: str = "Quarterly returns") -> bytes:
    """PNG bytes of :func:`quarterly_returns_figure`."""
    return _png(quarterly_returns_figure(quarterly, title))


def sector_exposure_figure(exposure: pl.DataFrame, title: str = "Sector exposure") -> Figure:
    """Stacked weight per sector at each rebalance (held until the next), as a Figure.

    ``exposure``: ``date, sector, weight`` (``core.backtest.comparison.sector_exposure`` for one
    strategy). The white space above the stack is cash.
    """
    _plottable(exposure, ("date", "sector", "weight"))
    wide = (
        exposure.pivot(on="sector", index="date", values="weight", aggregate_function="sum")
        .sort("date")
        .fill_null(0.0)
    )
    sectors = sorted(c for c in wide.columns if c != "date")
    dates = wide["date"].to_list()
    fig = _figure(10, 4.5, right=2.3)
    ax = fig.subplots()
    if len(dates) == 1:
        dates = dates * 2  # a single rebalance still draws a band
        wide = pl.concat([wide, wide])
    ax.stackplot(
        dates, *[wide[s].to_numpy() for s in sectors], labels=sectors, step="post", alpha=0.85
    )
    ax.set_ylim(0.0, 1.0)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:.0%}"))
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    ax.grid(True, alpha=0.3)
    return fig


def sector_exposure_png(exposure: pl.DataFrame, title: str = "Sector exposure") -> bytes:
    """PNG bytes of :func:`sector_exposure_figure`."""
    return _png(sector_exposure_figure(exposure, title))


def benchmarks_figure(curves: pl.DataFrame, title: str = "Benchmarks") -> Figure:
    """Equity of each benchmark on a log scale, as a Figure.

    ``curves``: ``date, benchmark, equity`` (long, one line per benchmark).
    """
    _plottable(curves, ("date", "benchmark", "equity"))
    fig = _figure(10, 4.5)
    ax = fig.subplots()
    for (name,), part in curves.sort("date").group_by("benchmark", maintain_order=True):
        ax.plot(part["date"].to_list(), part["equity"].to_numpy(), label=str(name))
    ax.set_yscale("log")
    plain = FuncFormatter(lambda y, _: f"{y:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.set_title(title)
    ax.legend(loc="upper left")
    ax.grid(True, which="both", alpha=0.3)
    return fig


def benchmarks_png(curves: pl.DataFrame, title: str = "Benchmarks") -> bytes:
    """PNG bytes of :func:`benchmarks_figure`."""
    return _png(benchmarks_figure(curves, title))


def md_image(png: bytes, alt: str) -> str:
    """Markdown image with the PNG inlined as a base64 data URI (renders in Dagster metadata)."""
    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("md_image expects PNG bytes (they must start with the PNG signature)")
    encoded = base64.b64encode(png).decode("ascii")
    safe_alt = alt.replace("[", "(").replace("]", ")")
    return f"![{safe_alt}](data:image/png;base64,{encoded})"

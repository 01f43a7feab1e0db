"""One strategy's tear sheet from its frames: the charts and the HTML, as one job.

Pure (polars and matplotlib in, a string and PNG bytes out): the tear-sheet step builds a
:class:`PageJob` per page to draw and maps :func:`draw_page` over them, in its own process or
spread over both cores (``app.parallel.process_map``); the step writes the files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from quant_pipeline.core.backtest.comparison import sector_exposure
from quant_pipeline.core.reporting import backtest_charts as plots
from quant_pipeline.core.reporting.tearsheet import render_tearsheet

METADATA_CHARTS = 2  # the first chart (equity) and the monthly heatmap go to the asset's page


@dataclass(frozen=True)
class PageJob:
    """Everything one page shows, each frame already limited to the strategy."""

    name: str
    benchmark: str
    daily: pl.DataFrame  # its backtest.daily rows without ``strategy``, by date
    quarterly: pl.DataFrame  # its backtest.quarterly rows (with ``strategy``)
    positions: pl.DataFrame  # its backtest.positions rows without ``strategy``
    metrics: pl.DataFrame  # core.backtest.comparison.tearsheet_metrics
    trades: pl.DataFrame
    labels: dict[str, str]
    relative: pl.DataFrame
    sleeves: pl.DataFrame
    lean: pl.DataFrame
    suspect_moves: pl.DataFrame | None
    exposures: Any
    multiple_testing: Any


def strategy_charts(
    daily: pl.DataFrame, quarterly: pl.DataFrame, positions: pl.DataFrame, benchmark: str
) -> dict[str, bytes]:
    """The tear sheet's charts for one strategy (frames already filtered to it), by title."""
    charts = {
        f"Equity vs {benchmark} benchmark (log scale) and drawdown": plots.equity_chart_png(
            daily, f"Equity vs {benchmark} benchmark"
        ),
        "Drawdown": plots.drawdown_png(daily),
        "Monthly returns": plots.monthly_heatmap_png(daily),
    }
    if quarterly.height:
        charts["Quarterly returns"] = plots.quarterly_returns_png(quarterly)
    charts["Rolling 12-month Sharpe ratio"] = plots.rolling_sharpe_png(daily)
    if positions.height:
        charts["Sector exposure after each rebalance"] = plots.sector_exposure_png(
            sector_exposure(positions)
        )
    return charts


def draw_page(_shared: object, job: PageJob) -> tuple[str, dict[str, bytes]]:
    """The page's HTML and the charts its asset page shows (equity, monthly returns)."""
    charts = strategy_charts(
        job.daily, job.quarterly.drop("strategy"), job.positions, job.benchmark
    )
    page = render_tearsheet(
        job.name,
        job.metrics,
        job.daily,
        job.trades,
        job.quarterly,
        charts,
        labels=job.labels,
        relative=job.relative,
        sleeves=job.sleeves,
        lean=job.lean,
        suspect_moves=job.suspect_moves,
        exposures=job.exposures,
        multiple_testing=job.multiple_testing,
    )
    shown = [*list(charts)[:1], "Monthly returns"]
    return page, {title: charts[title] for title in shown}

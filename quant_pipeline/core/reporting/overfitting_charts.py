"""Charts of the overfitting guards as PNG bytes: PBO logits, sweep heatmaps, walk-forward equity.

Same approach as :mod:`core.reporting.backtest_charts`: ``matplotlib.figure.Figure`` on the Agg
canvas, no pyplot. Wrap the bytes with ``backtest_charts.md_image`` for Dagster metadata.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from quant_pipeline.core.data.frames import require_columns
from quant_pipeline.core.reporting.backtest_charts import _png


def pbo_logits_figure(logits: pl.DataFrame, pbo: float, title: str) -> Figure:
    """Histogram of the CSCV logits (``logit`` column); the share left of 0 is the PBO."""
    if logits.is_empty():
        raise ValueError("logits is empty: nothing to plot")
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    values = logits["logit"].to_numpy()
    ax.hist(values[np.isfinite(values)], bins=30, color="tab:blue", alpha=0.8)
    ax.axvline(0.0, color="tab:red", lw=1.5, label=f"PBO = {pbo:.1%} (logit <= 0)")
    ax.set_xlabel("logit of the in-sample best's out-of-sample relative rank")
    ax.set_ylabel("combinations")
    ax.set_title(title)
    ax.legend()
    return fig


def pbo_logits_png(logits: pl.DataFrame, pbo: float, title: str) -> bytes:
    """:func:`pbo_logits_figure` as PNG bytes."""
    return _png(pbo_logits_figure(logits, pbo, title))


def heatmap_figure(table: pl.DataFrame, x: str, y: str, metric: str, title: str) -> Figure:
    """Mean of ``metric`` over the variants sharing each (``x``, ``y``) pair, as a heatmap."""
    require_columns(table, [x, y, metric], "heatmap table")
    # a one-parameter grid has x == y: group by it once (the cells form the diagonal)
    cells = table.group_by(*dict.fromkeys((x, y))).agg(pl.col(metric).mean())
    xs = sorted(cells[x].unique().to_list(), key=str)
    ys = sorted(cells[y].unique().to_list(), key=str)
    grid = np.full((len(ys), len(xs)), np.nan)
    pairs = cells.select(pl.col(x).alias("_x"), pl.col(y).alias("_y"), metric)
    for xv, yv, v in pairs.iter_rows():
        grid[ys.index(yv), xs.index(xv)] = np.nan if v is None else v
    fig = Figure(figsize=(1.2 * len(xs) + 3, 0.7 * len(ys) + 2), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(grid, cmap="viridis", aspect="auto", origin="lower")
    ax.set_xticks(range(len(xs)), [str(v) for v in xs])
    ax.set_yticks(range(len(ys)), [str(v) for v in ys])
    for (i, j), v in np.ndenumerate(grid):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white", fontsize=8)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label=f"mean {metric}")
    return fig


def heatmap_png(table: pl.DataFrame, x: str, y: str, metric: str, title: str) -> bytes:
    """:func:`heatmap_figure` as PNG bytes."""
    return _png(heatmap_figure(table, x, y, metric, title))


def walk_forward_figure(curves: pl.DataFrame, title: str) -> Figure:
    """Equity curves (``date``, ``curve``, ``equity``) on a log scale, one line per curve."""
    if curves.is_empty():
        raise ValueError("curves is empty: nothing to plot")
    fig = Figure(figsize=(10, 5), layout="constrained")
    ax = fig.subplots()
    for (name,), part in curves.sort("date").group_by("curve", maintain_order=True):
        ax.plot(part["date"].to_list(), part["equity"].to_list(), label=str(name), lw=1.2)
    ax.set_yscale("log")
    ax.set_ylabel("equity (log)")
    ax.set_title(title)
    ax.legend()
    return fig


def walk_forward_png(curves: pl.DataFrame, title: str) -> bytes:
    """:func:`walk_forward_figure` as PNG bytes."""
    return _png(walk_forward_figure(curves, title))

"""Research charts as PNG bytes: every equity curve, factor IC and quantiles, luck histograms.

Same approach as :mod:`core.reporting.backtest_charts`: ``matplotlib.figure.Figure`` on the Agg
canvas, no pyplot. Wrap the bytes with ``core.reporting.backtest_charts.md_image`` for Dagster
metadata.
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import polars as pl
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from quant_pipeline.core.reporting.backtest_charts import _png


def _grid(n: int, cols: int = 4, size: tuple[float, float] = (3.2, 2.4)) -> tuple[Figure, list]:
    rows = max(1, math.ceil(n / cols))
    cols = min(cols, max(n, 1))
    fig = Figure(figsize=(size[0] * cols, size[1] * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def equity_curves_figure(daily: pl.DataFrame) -> Figure:
    """Every strategy's equity (log scale) and the benchmark from the earliest start.

    ``daily``: backtest.daily (strategy, date, equity, benchmark_equity). Each strategy starts
    at 1 on its own first date; the benchmark line is that of the strategy starting first.
    """
    if daily.is_empty():
        raise ValueError("daily is empty: nothing to plot")
    daily = daily.sort("strategy", "date")
    fig = Figure(figsize=(11, 6), layout="constrained")
    ax = fig.subplots()
    first = daily.group_by("strategy").agg(pl.col("date").min()).sort("date", "strategy")
    earliest = first["strategy"][0]
    bench = daily.filter(pl.col("strategy") == earliest)
    ax.plot(
        bench["date"].to_list(),
        bench["benchmark_equity"].to_numpy(),
        label="benchmark",
        color="black",
        linewidth=2.0,
    )
    for (name,), part in daily.group_by("strategy", maintain_order=True):
        ax.plot(part["date"].to_list(), part["equity"].to_numpy(), label=str(name), linewidth=1.1)
    ax.set_yscale("log")
    plain = FuncFormatter(lambda y, _: f"{y:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.set_ylabel("equity (log, 1 = each strategy's start)")
    ax.set_title("All strategies vs the equal-weight benchmark")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, ncols=2)
    return fig


def equity_curves_png(daily: pl.DataFrame) -> bytes:
    """PNG bytes of :func:`equity_curves_figure`."""
    return _png(equity_curves_figure(daily))


def ic_summary_figure(summary: pl.DataFrame) -> Figure:
    """Mean IC per factor with +-2 standard errors (std / sqrt(periods)), from factor_summary."""
    if summary.is_empty():
        raise ValueError("factor summary is empty: nothing to plot")
    s = summary.sort("mean_ic", nulls_last=True)
    mean = s["mean_ic"].fill_null(0.0).to_numpy()
    se = (s["ic_std"] / s["n_periods"].cast(pl.Float64).sqrt()).fill_null(0.0).to_numpy()
    fig = Figure(figsize=(8, 0.35 * s.height + 1.5), layout="constrained")
    ax = fig.subplots()
    y = np.arange(s.height)
    colors = ["tab:green" if m > 0 else "tab:red" for m in mean]
    ax.barh(y, mean, xerr=2 * se, color=colors, alpha=0.8, capsize=2)
    ax.set_yticks(y, s["factor"].to_list(), fontsize=8)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("mean Spearman IC vs next-period return (bars: +-2 s.e.)")
    ax.set_title("Factor information coefficients")
    ax.grid(True, axis="x", alpha=0.3)
    return fig


def ic_summary_png(summary: pl.DataFrame) -> bytes:
    """PNG bytes of :func:`ic_summary_figure`."""
    return _png(ic_summary_figure(summary))


def quantile_returns_figure(quantiles: pl.DataFrame) -> Figure:
    """Mean forward return per quantile (averaged over dates), grouped bars per factor.

    One axes for every factor (a panel per factor cost seconds of matplotlib layout at 20 factors):
    each factor's quantiles side by side, 1 = lowest factor value, darkest = highest."""
    if quantiles.is_empty():
        raise ValueError("quantile frame is empty: nothing to plot")
    means = (
        quantiles.group_by("factor", "quantile")
        .agg(pl.col("mean_forward_return").mean())
        .sort("factor", "quantile")
    )
    factors = means["factor"].unique(maintain_order=True).to_list()
    levels = means["quantile"].unique().sort().to_list()
    width = 0.8 / len(levels)
    fig = Figure(figsize=(max(8.0, 0.6 * len(factors) + 2.0), 5.0), layout="constrained")
    ax = fig.subplots()
    cmap = matplotlib.colormaps["viridis"]
    x = {f: i for i, f in enumerate(factors)}
    for j, level in enumerate(levels):
        part = means.filter(pl.col("quantile") == level)
        pos = (
            np.array([x[f] for f in part["factor"].to_list()]) + (j - (len(levels) - 1) / 2) * width
        )
        ax.bar(
            pos,
            part["mean_forward_return"].to_numpy(),
            width=width,
            color=cmap(j / max(len(levels) - 1, 1)),
            label=f"Q{level}",
        )
    ax.set_xticks(range(len(factors)), factors, rotation=45, ha="right", fontsize=8)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:.1%}"))
    ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle("Mean next-period return by factor quintile (1 = lowest factor value)")
    fig.legend(loc="outside right upper", fontsize=8, title="quintile")
    return fig


def quantile_returns_png(quantiles: pl.DataFrame) -> bytes:
    """PNG bytes of :func:`quantile_returns_figure`."""
    return _png(quantile_returns_figure(quantiles))


def luck_figure(luck: pl.DataFrame, random: dict[str, pl.DataFrame]) -> Figure:
    """Histogram of the random portfolios' Sharpe ratios per strategy, the strategy's marked.

    ``luck``: research.luck rows (strategy, sharpe, sharpe_percentile, oracle_sharpe);
    ``random``: strategy -> its random portfolios' (sharpe, ...) frame.
    """
    names = [n for n in luck["strategy"].to_list() if n in random]
    if not names:
        raise ValueError("no strategy with random portfolios: nothing to plot")
    fig, axes = _grid(len(names), cols=3, size=(4.0, 2.8))
    for ax, name in zip(axes, names, strict=True):
        row = luck.filter(pl.col("strategy") == name).row(0, named=True)
        sharpe = random[name]["sharpe"].drop_nulls().drop_nans().to_numpy()
        ax.hist(sharpe, bins=30, color="tab:gray", alpha=0.7)
        if row["sharpe"] is not None:
            ax.axvline(row["sharpe"], color="tab:red", linewidth=2)
        pct = row["sharpe_percentile"]
        ax.set_title(
            f"{name}: pct {pct:.0f}" if pct is not None else name,
            fontsize=9,
        )
        oracle = row["oracle_sharpe"]
        ax.set_xlabel(
            "Sharpe" + (f" (oracle {oracle:.1f})" if oracle is not None else ""), fontsize=8
        )
        ax.tick_params(labelsize=7)
    fig.suptitle("Strategy Sharpe (red) among random portfolios under the same rules")
    return fig


def luck_png(luck: pl.DataFrame, random: dict[str, pl.DataFrame]) -> bytes:
    """PNG bytes of :func:`luck_figure`."""
    return _png(luck_figure(luck, random))


TILT_COLUMNS = ("size_tilt", "value_tilt", "momentum_tilt", "quality_tilt")


def tilts_figure(exposures: pl.DataFrame, title: str = "Style tilts and beta") -> Figure:
    """One strategy's style tilts (top panel, one line per tilt present) and ex-ante beta (bottom
    panel) per rebalance date. ``exposures``: research.exposures rows of the strategy
    (rebalance_date, the ``*_tilt`` columns, beta)."""
    if exposures.is_empty():
        raise ValueError("exposures is empty: nothing to plot")
    frame = exposures.sort("rebalance_date")
    days = frame["rebalance_date"].to_list()
    fig = Figure(figsize=(11, 5.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    for column in TILT_COLUMNS:
        if column in frame.columns and frame[column].is_not_null().any():
            values = frame[column].cast(pl.Float64).fill_null(np.nan).to_numpy()
            top.plot(days, values, label=column.removesuffix("_tilt"), linewidth=1.2)
    top.axhline(0.0, color="black", linewidth=0.8)
    top.set_ylabel("tilt (z-score of the book)")
    top.set_title(title)
    top.legend(loc="upper left", ncols=4, fontsize=8)
    top.grid(True, alpha=0.3)
    beta = frame["beta"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    bottom.plot(days, beta, label="beta", color="black", linewidth=1.2)
    bottom.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    bottom.set_ylabel("ex-ante beta")
    bottom.grid(True, alpha=0.3)
    return fig


def tilts_png(exposures: pl.DataFrame, title: str = "Style tilts and beta") -> bytes:
    return _png(tilts_figure(exposures, title))

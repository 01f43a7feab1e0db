"""What the overfitting charts draw, read back from their figures on tiny frames."""

from datetime import date

import numpy as np
import polars as pl

from quant_pipeline.core.reporting.overfitting_charts import (
    heatmap_figure,
    heatmap_png,
    pbo_logits_figure,
    walk_forward_figure,
)


def test_the_heatmap_cell_is_the_mean_metric_of_the_variants_sharing_x_and_y():
    table = pl.DataFrame(
        {
            "top_n": [10, 10, 20, 20],
            "cap": [0.2, 0.2, 0.2, 0.3],
            "sharpe_ratio": [1.0, 2.0, 0.5, 0.7],
        }
    )
    fig = heatmap_figure(table, "top_n", "cap", "sharpe_ratio", "t")
    ax = fig.axes[0]
    grid = ax.images[0].get_array()
    # rows = cap (0.2, 0.3), columns = top_n (10, 20); (10, 0.3) has no variant
    assert grid[0, 0] == 1.5 and grid[0, 1] == 0.5 and grid[1, 1] == 0.7
    assert np.isnan(np.asarray(grid, dtype=float)[1, 0])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["10", "20"]
    assert ax.get_xlabel() == "top_n" and ax.get_ylabel() == "cap"
    assert heatmap_png(table, "top_n", "cap", "sharpe_ratio", "t").startswith(b"\x89PNG")


def test_the_logit_histogram_counts_every_combination_and_marks_zero():
    logits = pl.DataFrame({"logit": [-1.0, -0.5, 0.2, 0.4, 1.0]})
    ax = pbo_logits_figure(logits, 0.4, "t").axes[0]
    assert sum(p.get_height() for p in ax.patches) == 5
    assert ax.lines[0].get_xdata()[0] == 0.0
    assert "PBO = 40.0%" in ax.get_legend().get_texts()[0].get_text()


def test_the_walk_forward_chart_draws_each_curves_equity():
    curves = pl.DataFrame(
        {
            "date": [date(2024, 1, 2), date(2024, 1, 3)] * 2,
            "curve": ["walk_forward"] * 2 + ["in_sample_best"] * 2,
            "equity": [1.01, 1.03, 1.02, 1.05],
        }
    )
    ax = walk_forward_figure(curves, "t").axes[0]
    lines = {line.get_label(): list(line.get_ydata()) for line in ax.lines}
    assert lines == {"walk_forward": [1.01, 1.03], "in_sample_best": [1.02, 1.05]}
    assert ax.get_yscale() == "log"

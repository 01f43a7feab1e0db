import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quant_pipeline.core.factors.transforms import demean, rank, winsorize, zscore

FRAME = pl.DataFrame(
    {
        "d": [1, 1, 1, 1, 1, 2, 2],
        "x": [1.0, 2.0, 3.0, 4.0, 100.0, 5.0, None],
        "ok": [True, True, True, True, False, True, True],
    }
)


def test_transforms_use_only_masked_rows_of_the_same_group():
    out = FRAME.select(
        w=winsorize(pl.col("x"), 0.25, 0.75, "d", pl.col("ok")),
        z=zscore(pl.col("x"), "d", pl.col("ok")),
        r=rank(pl.col("x"), "d", pl.col("ok"), descending=True),
        m=demean(pl.col("x"), "d", pl.col("ok")),
    )
    # Group 1 masked values 1..4: quartiles (linear) 1.75 and 3.25; mean 2.5, std 1.2910.
    s = 1.2909944487358056
    expected = pl.DataFrame(
        {
            "w": [1.75, 2.0, 3.0, 3.25, None, 5.0, None],
            "z": [-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s, None, 0.0, None],
            "r": [4.0, 3.0, 2.0, 1.0, None, 1.0, None],
            "m": [-1.5, -0.5, 0.5, 1.5, None, 0.0, None],
        }
    )
    assert_frame_equal(out, expected)


def test_bad_winsor_bounds_are_rejected():
    with pytest.raises(ValueError, match="lower < upper"):
        winsorize(pl.col("x"), 0.9, 0.1)

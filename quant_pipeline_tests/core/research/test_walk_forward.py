"""Walk-forward on two hand-made variants whose ranking flips between years."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from quant_pipeline.core.research.walk_forward import (
    WalkForwardInputError,
    add_years,
    walk_forward,
    windows,
)

DAYS = [
    date(2020, 1, 1) + timedelta(days=i) for i in range((date(2023, 1, 1) - date(2020, 1, 1)).days)
]
MEANS = {
    "a": {2020: 0.002, 2021: -0.002, 2022: 0.001},
    "b": {2020: 0.0005, 2021: 0.0005, 2022: 0.0005},
}


def _returns(variant: str) -> np.ndarray:
    wiggle = 0.001 * (-1.0) ** np.arange(len(DAYS))
    return np.array([MEANS[variant][d.year] for d in DAYS]) + wiggle


def _daily() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "variant": ["a"] * len(DAYS) + ["b"] * len(DAYS),
            "date": DAYS * 2,
            "portfolio_return": np.concatenate([_returns("a"), _returns("b")]),
        }
    )


def _year(variant: str, year: int) -> np.ndarray:
    return _returns(variant)[[d.year == year for d in DAYS]]


def test_expanding_walk_forward_picks_on_the_past_and_chains_the_test_years():
    table, curves = walk_forward(_daily(), "sharpe_ratio", train_years=1, test_years=1)
    assert table["variant"].to_list() == ["a", "b"]  # 2020 favours a; 2020-21 favours b
    assert table["test_start"].to_list() == [date(2021, 1, 1), date(2022, 1, 1)]
    assert table["train_start"].to_list() == [date(2020, 1, 1)] * 2
    assert table["train_end"].to_list() == [date(2020, 12, 31), date(2021, 12, 31)]
    r2021, r2022 = np.prod(1 + _year("a", 2021)) - 1, np.prod(1 + _year("b", 2022)) - 1
    assert table["test_return"].to_list() == pytest.approx([r2021, r2022], rel=1e-12)
    a2020 = _year("a", 2020)
    assert table["train_value"][0] == pytest.approx(a2020.mean() / a2020.std(ddof=1) * 252**0.5)
    oos = curves.filter(pl.col("curve") == "walk_forward")
    assert oos["equity"][-1] == pytest.approx((1 + r2021) * (1 + r2022), rel=1e-12)
    # with hindsight b is best over the whole period; its curve runs over the same test days
    assert table["in_sample_best"].unique().to_list() == ["b"]
    best = curves.filter(pl.col("curve") == "in_sample_best")
    assert best["date"].to_list() == oos["date"].to_list()


def test_sliding_windows_keep_their_length():
    got = windows(date(2020, 1, 1), date(2024, 6, 30), 2, 1, "sliding")
    assert got == [
        (date(2020, 1, 1), date(2022, 1, 1), date(2023, 1, 1)),
        (date(2021, 1, 1), date(2023, 1, 1), date(2024, 1, 1)),
        (date(2022, 1, 1), date(2024, 1, 1), date(2025, 1, 1)),
    ]
    table, _ = walk_forward(_daily(), "total_return", train_years=1, test_years=1, window="sliding")
    # 2021 alone favours b
    assert table["train_start"].to_list() == [date(2020, 1, 1), date(2021, 1, 1)]
    assert table["variant"].to_list() == ["a", "b"]


def test_leap_days_and_too_short_data():
    assert add_years(date(2020, 2, 29), 1) == date(2021, 2, 28)
    with pytest.raises(WalkForwardInputError, match="shorter than train_years=5"):
        walk_forward(_daily(), train_years=5)
    with pytest.raises(WalkForwardInputError, match="objective"):
        walk_forward(_daily(), "luck", train_years=1)

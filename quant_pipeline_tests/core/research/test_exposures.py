"""Exposures on tiny hand-computed books."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from quant_pipeline.core.research.exposures import ex_ante_beta, sector_exposures, style_tilts
from quant_pipeline.core.strategies.weighting import PriceHistory

D = date(2024, 3, 1)
VALUES = pl.DataFrame(
    {
        "rebalance_date": [D] * 4,
        "ticker": ["A", "B", "C", "X"],
        "sector": ["Tech", "Tech", "Energy", "Tech"],
        "in_universe": [True, True, True, False],
        "market_cap": [np.e, np.e**2, np.e**3, 1e12],
        "earnings_yield": [0.1, 0.2, None, 0.9],
        "momentum_12_1": [1.0, 2.0, 3.0, 99.0],
    }
)


def _book(weights: dict[str, float]) -> pl.DataFrame:
    sectors = {"A": "Tech", "B": "Tech", "C": "Energy"}
    return pl.DataFrame(
        {
            "strategy": "s",
            "rebalance_date": D,
            "ticker": list(weights),
            "sector": [sectors[t] for t in weights],
            "weight": list(weights.values()),
        }
    )


def test_style_tilts_are_weighted_mean_z_scores_over_the_universe():
    tilts = style_tilts(_book({"B": 0.5, "C": 0.5}), VALUES).row(0, named=True)
    # momentum 1, 2, 3 -> z -1, 0, 1 (X is not in the universe)
    assert tilts["momentum_tilt"] == pytest.approx(0.5)
    # ln(cap) 1, 2, 3 -> the same z-scores
    assert tilts["size_tilt"] == pytest.approx(0.5)
    # earnings yield 0.1, 0.2 -> z -1/sqrt(2), +1/sqrt(2); C has none and adds nothing
    assert tilts["value_tilt"] == pytest.approx(0.5 * 2**-0.5)
    assert tilts["n_names"] == 2


def test_sector_exposure_against_the_universes_market_cap_weights():
    table = sector_exposures(_book({"A": 0.6, "B": 0.4}), VALUES)
    caps = {"Tech": np.e + np.e**2, "Energy": np.e**3}
    total = sum(caps.values())
    rows = {r["sector"]: r for r in table.iter_rows(named=True)}
    assert rows["Tech"]["portfolio_weight"] == pytest.approx(1.0)
    assert rows["Tech"]["universe_weight"] == pytest.approx(caps["Tech"] / total)
    assert rows["Energy"]["portfolio_weight"] == 0.0
    assert rows["Energy"]["active_weight"] == pytest.approx(-caps["Energy"] / total)


def test_ex_ante_beta_uses_only_returns_before_the_date():
    rng = np.random.default_rng(2)
    days = [D - timedelta(days=100) + timedelta(days=i) for i in range(130)]
    b = rng.normal(0, 0.01, len(days))
    rows = []
    for t, mult in (("A", 2.0), ("B", 1.0)):
        px = 100 * np.cumprod(1 + mult * b)
        rows += list(zip([t] * len(days), days, px, strict=True))
    prices = pl.DataFrame(rows, schema=["ticker", "date", "adj_close"], orient="row")
    bench = pl.DataFrame({"date": days, "benchmark_return": b})
    book = _book({"A": 0.5, "B": 0.5})
    got = ex_ante_beta(book, PriceHistory(prices), bench, lookback=60, min_history=30)
    assert got["beta"][0] == pytest.approx(1.5, rel=1e-9)
    assert got["beta_coverage"][0] == pytest.approx(1.0)
    # returns on and after D do not move it
    shocked = bench.with_columns(
        benchmark_return=pl.when(pl.col("date") >= D)
        .then(0.5)
        .otherwise(pl.col("benchmark_return"))
    )
    again = ex_ante_beta(book, PriceHistory(prices), shocked, lookback=60, min_history=30)
    assert again["beta"][0] == got["beta"][0]

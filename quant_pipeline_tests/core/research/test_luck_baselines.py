"""Random-portfolio baselines, the oracle bound and the probabilistic Sharpe ratio."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quant_pipeline.core.research import luck_baselines as luck

DATES = [date(2020, 1, 2), date(2020, 2, 3), date(2020, 3, 2)]
SECTORS = {
    f"T{i:02d}": s for i, s in enumerate(["Energy"] * 5 + ["Utilities"] * 4 + ["Materials"] * 3)
}


@pytest.fixture
def eligible() -> pl.DataFrame:
    return pl.DataFrame(
        [(d, t, s) for d in DATES for t, s in SECTORS.items()],
        schema=["rebalance_date", "ticker", "sector"],
        orient="row",
    )


@pytest.fixture
def fwd(eligible: pl.DataFrame) -> pl.DataFrame:
    rng = np.random.default_rng(7)
    return eligible.select(
        "rebalance_date",
        "ticker",
        pl.Series("forward_return", rng.normal(0.01, 0.05, eligible.height)),
    )


def test_random_portfolios_have_the_size_the_sector_cap_and_equal_weights(eligible):
    out = luck.random_portfolios(eligible, n_names=4, sector_cap=0.5, n_portfolios=50, seed=1)
    per = out.group_by("portfolio_id", "rebalance_date").agg(
        pl.len().alias("n"),
        pl.col("weight").sum().alias("w"),
        pl.col("ticker").n_unique().alias("u"),
    )
    assert per.height == 50 * 3
    assert per["n"].unique().to_list() == [4]
    assert per["u"].unique().to_list() == [4]
    assert per["w"].to_list() == pytest.approx([1.0] * per.height)
    # cap 0.5 x 4 names = at most 2 names per sector
    most = out.group_by("portfolio_id", "rebalance_date", "sector").len()["len"].max()
    assert most == 2
    # and the draws differ: not every portfolio holds the same names
    assert (
        out.filter(pl.col("rebalance_date") == DATES[0])
        .group_by("portfolio_id")
        .agg(pl.col("ticker").sort().str.join(","))["ticker"]
        .n_unique()
        > 10
    )


def test_random_portfolios_are_reproducible_for_a_seed_and_differ_across_seeds(
    eligible, monkeypatch
):
    a = luck.random_portfolios(eligible, 4, 0.5, n_portfolios=20, seed=3)
    b = luck.random_portfolios(eligible, 4, 0.5, n_portfolios=20, seed=3)
    assert_frame_equal(a, b)
    assert not a.equals(luck.random_portfolios(eligible, 4, 0.5, n_portfolios=20, seed=4))
    # drawing in smaller blocks (as on a big universe) draws the same portfolios
    monkeypatch.setattr(luck, "_ROWS_PER_BLOCK", 40)
    assert_frame_equal(a, luck.random_portfolios(eligible, 4, 0.5, n_portfolios=20, seed=3))


def test_a_binding_sector_cap_leaves_a_smaller_equal_weight_portfolio(eligible):
    # 3 sectors x at most 1 name (cap 0.2 x 5 = 1) -> 3 names of 1/3 each
    out = luck.random_portfolios(eligible, n_names=5, sector_cap=0.2, n_portfolios=5, seed=0)
    assert out.group_by("portfolio_id", "rebalance_date").len()["len"].unique().to_list() == [3]
    assert out["weight"].unique().to_list() == pytest.approx([1 / 3])


def test_random_portfolios_reject_a_sector_cap_above_one(eligible):
    with pytest.raises(ValueError, match="sector_cap"):
        luck.random_portfolios(eligible, 4, 1.5)


def test_oracle_takes_the_best_forward_returns_within_the_sector_cap():
    d = DATES[0]
    eligible = pl.DataFrame(
        {
            "rebalance_date": [d] * 4,
            "ticker": ["A", "B", "C", "D"],
            "sector": ["X", "X", "X", "Y"],
        }
    )
    fwd = pl.DataFrame(
        {
            "rebalance_date": [d] * 4,
            "ticker": ["A", "B", "C", "D"],
            "forward_return": [0.3, 0.2, 0.1, -0.1],
        }
    )
    # 3 names, cap 0.67 -> 2 per sector: A, B from X, then D (C is blocked by the cap)
    out = luck.oracle_portfolio(eligible, fwd, n_names=3, sector_cap=0.67)
    assert out.select("ticker", "weight").rows() == [("A", 1 / 3), ("B", 1 / 3), ("D", 1 / 3)]
    # its period return is the mean: (0.3 + 0.2 - 0.1) / 3
    assert luck.fast_period_returns(out, fwd)["period_return"].to_list() == pytest.approx([0.4 / 3])


def test_the_oracle_beats_every_random_portfolio_on_every_date(eligible, fwd):
    rand = luck.fast_period_returns(luck.random_portfolios(eligible, 4, 0.5, 200, seed=0), fwd)
    best = luck.fast_period_returns(luck.oracle_portfolio(eligible, fwd, 4, 0.5), fwd)
    worst_gap = (
        rand.join(best.rename({"period_return": "oracle"}), on="rebalance_date")
        .select((pl.col("oracle") - pl.col("period_return")).min())
        .item()
    )
    assert worst_gap >= -1e-12


def test_fast_period_returns_are_weighted_sums_per_portfolio_and_date():
    d = DATES[0]
    weights = pl.DataFrame(
        {
            "portfolio_id": [0, 0, 1, 1],
            "rebalance_date": [d] * 4,
            "ticker": ["A", "B", "A", "Z"],
            "weight": [0.5, 0.5, 0.5, 0.5],
        }
    )
    fwd = pl.DataFrame(
        {"rebalance_date": [d, d], "ticker": ["A", "B"], "forward_return": [0.1, -0.3]}
    )
    out = luck.fast_period_returns(weights, fwd)
    # portfolio 0: (0.1 - 0.3)/2; portfolio 1: 0.1/2 + Z without a label as cash
    assert out.rows() == [(0, d, pytest.approx(-0.1)), (1, d, pytest.approx(0.05))]


def test_portfolio_summary_golden():
    pr = pl.DataFrame({"portfolio_id": [0, 0], "period_return": [0.1, -0.05]})
    out = luck.portfolio_summary(pr, periods_per_year=2)
    # one year: 1.1 x 0.95 - 1 = 0.045; sharpe: mean 0.025 / std 0.106066 x sqrt 2 = 0.3333
    assert out["cagr"].to_list() == pytest.approx([0.045])
    assert out["sharpe"].to_list() == pytest.approx([0.025 / (0.15 / math.sqrt(2)) * math.sqrt(2)])


def test_percentile_of_counts_values_below_and_half_of_ties():
    assert luck.percentile_of(3.0, [1.0, 2.0, 3.0, 4.0]) == 62.5  # (2 + 0.5) / 4
    assert luck.percentile_of(10.0, [1.0, 2.0, float("nan")]) == 100.0
    assert luck.percentile_of(0.0, [1.0, 2.0]) == 0.0
    with pytest.raises(ValueError, match="no finite values"):
        luck.percentile_of(1.0, [])


def _uneven_universe(n_dates: int = 4) -> pl.DataFrame:
    """40 names in sectors of 20, 10, 6, 3 and 1 names (the last with a null sector)."""
    sizes = {"A": 20, "B": 10, "C": 6, "D": 3, None: 1}
    names = [(f"{s or 'U'}{i:02d}", s) for s, k in sizes.items() for i in range(k)]
    days = [date(2021, m, 1) for m in range(1, n_dates + 1)]
    return pl.DataFrame(
        [(d, t, s) for d in days for t, s in names],
        schema={"rebalance_date": pl.Date, "ticker": pl.String, "sector": pl.String},
        orient="row",
    )


@pytest.mark.parametrize(
    ("n_names", "cap", "size", "per_sector"),
    [
        (10, None, 10, 10),  # no cap: 10 of 40
        (10, 0.3, 10, 3),  # 3 per sector: 3 + 3 + 3 + 3 + 1 = 13 feasible, 10 held
        (20, 0.1, 9, 2),  # 2 per sector: 2 + 2 + 2 + 2 + 1 = 9 feasible < 20
        (50, None, 40, 50),  # more names asked than eligible: all 40
    ],
)
def test_every_random_portfolio_holds_min_of_size_and_feasible_names_within_the_cap(
    n_names, cap, size, per_sector
):
    eligible = _uneven_universe()
    out = luck.random_portfolios(eligible, n_names, cap, n_portfolios=300, seed=5)
    per = out.group_by("portfolio_id", "rebalance_date").agg(
        pl.len().alias("n"), pl.col("weight").sum().alias("w"), pl.col("ticker").n_unique()
    )
    assert per.height == 300 * 4
    assert per["n"].unique().to_list() == [size]
    assert per["ticker"].unique().to_list() == [size]
    assert per["w"].to_numpy() == pytest.approx(np.ones(per.height))
    sector_counts = out.group_by("portfolio_id", "rebalance_date", "sector").len()["len"]
    assert sector_counts.max() <= per_sector
    assert out["sector"].null_count() == 0 and "Unknown" in out["sector"].to_list()
    assert out.join(eligible, on=["rebalance_date", "ticker"], how="anti").is_empty()


def test_random_portfolios_pick_names_uniformly():
    eligible = _uneven_universe(n_dates=1)
    n_draws = 4000
    # no cap, 10 of 40: every name is held with probability 10/40 = 0.25
    free = luck.random_portfolios(eligible, 10, None, n_portfolios=n_draws, seed=9)
    share = free.group_by("ticker").len()["len"].to_numpy() / n_draws
    assert share.size == 40
    assert np.abs(share - 0.25).max() < 0.035  # sd sqrt(.25 x .75 / 4000) = 0.0068: 5 sd
    # cap 2 per sector, 9 feasible < 20 wanted: each sector gives 2 names (D00..D02 2 of 3, the
    # lone null-sector name always), uniformly: P(A name) = 2/20, B 2/10, C 2/6, D 2/3, U 1
    capped = luck.random_portfolios(eligible, 20, 0.1, n_portfolios=n_draws, seed=9)
    by = (
        capped.group_by("ticker")
        .len()
        .with_columns(pl.col("ticker").str.slice(0, 1).alias("s"), (pl.col("len") / n_draws))
    )
    expected = {"A": 0.1, "B": 0.2, "C": 1 / 3, "D": 2 / 3, "U": 1.0}
    for s, p in expected.items():
        got = by.filter(pl.col("s") == s)["len"].to_numpy()
        assert np.abs(got - p).max() < 0.04, s


def test_random_period_returns_are_the_random_portfolios_weighted_forward_returns(eligible, fwd):
    # a name without a forward return counts as cash: drop a few labels
    labels = fwd.filter(pl.col("ticker") != "T03")
    fast = luck.random_period_returns(eligible, labels, 4, 0.5, n_portfolios=30, seed=8)
    slow = luck.fast_period_returns(luck.random_portfolios(eligible, 4, 0.5, 30, seed=8), labels)
    assert fast.columns == ["portfolio_id", "rebalance_date", "period_return"]
    assert_frame_equal(fast, slow, check_exact=False, rel_tol=1e-12)
    assert fast.height == 30 * 3


def test_random_baselines_of_an_empty_universe_are_empty(eligible, fwd):
    empty = eligible.clear()
    assert luck.random_portfolios(empty, 4, 0.5, 10).is_empty()
    assert luck.random_period_returns(empty, fwd, 4, 0.5, 10).is_empty()

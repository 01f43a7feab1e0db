"""Returns-based attribution: OLS by hand, factor and sector returns on tiny books, the split."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LinearRegression

from quant_pipeline.core.research.attribution import (
    MIN_NAMES,
    attribution,
    ols,
    sector_returns,
    style_factor_returns,
)
from quant_pipeline.core.research.exposures import style_tilts

D1, D2 = date(2024, 1, 2), date(2024, 1, 5)
DAYS = [date(2024, 1, 2) + timedelta(days=i) for i in range(6)]  # Jan 2 .. Jan 7


def test_ols_matches_the_textbook_numbers_of_a_four_point_line():
    # x 0..3, y 1 3 5 8: Sxx = 5, Sxy = 11.5 -> slope 2.3, intercept 4.25 - 2.3 * 1.5 = 0.8;
    # residuals 0.2 -0.1 -0.4 0.3: RSS 0.30, TSS 26.75, s² = 0.15;
    # se(slope) = sqrt(0.15 / 5), se(intercept) = sqrt(0.15 (1/4 + 1.5² / 5))
    fit = ols(np.array([1.0, 3.0, 5.0, 8.0]), np.array([[0.0], [1.0], [2.0], [3.0]]))
    assert fit["coefficients"] == pytest.approx([0.8, 2.3], abs=1e-12)
    assert fit["std_errors"] == pytest.approx([0.105**0.5, 0.03**0.5], abs=1e-12)
    assert fit["t_stats"][1] == pytest.approx(2.3 / 0.03**0.5, abs=1e-9)
    assert fit["r_squared"] == pytest.approx(1 - 0.30 / 26.75, abs=1e-12)
    assert fit["adj_r_squared"] == pytest.approx(1 - (0.30 / 26.75) * 3 / 2, abs=1e-12)


def _random_design(seed: int, n: int = 300, p: int = 5):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.01, (n, p))
    y = 0.0003 + x @ rng.normal(0.5, 0.3, p) + rng.normal(0, 0.004, n)
    return x, y


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ols_agrees_with_scikit_learn(seed):
    x, y = _random_design(seed)
    fit = ols(y, x)
    model = LinearRegression().fit(x, y)
    assert fit["coefficients"][0] == pytest.approx(model.intercept_, abs=1e-12)
    assert fit["coefficients"][1:] == pytest.approx(model.coef_, abs=1e-10)
    assert fit["r_squared"] == pytest.approx(model.score(x, y), abs=1e-12)


@pytest.mark.parametrize("seed", [4, 5])
def test_constrained_ols_is_the_lagrangian_solution_and_holds_the_constraint(seed):
    x, y = _random_design(seed)
    c = np.array([0.0, 0.2, 0.5, 0.3, 0.0])
    fit = ols(y, x, c)
    beta = fit["coefficients"]
    assert float(c @ beta[1:]) == pytest.approx(0.0, abs=1e-14)
    # independent: minimise |y - Zb|² s.t. [0, c]·b = 0 through the bordered normal equations
    z = np.column_stack([np.ones(len(y)), x])
    a = np.concatenate([[0.0], c])
    kkt = np.block([[z.T @ z, a[:, None]], [a[None, :], np.zeros((1, 1))]])
    solved = np.linalg.solve(kkt, np.concatenate([z.T @ y, [0.0]]))[:-1]
    assert beta == pytest.approx(solved, abs=1e-10)


def _values(momentum: dict[str, float], sectors: dict[str, str], day: date) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "rebalance_date": day,
            "ticker": list(momentum),
            "sector": [sectors[t] for t in momentum],
            "in_universe": True,
            "price": 10.0,
            "market_cap": None,
            "earnings_yield": None,
            "momentum_12_1": list(momentum.values()),
        },
        schema_overrides={"market_cap": pl.Float64, "earnings_yield": pl.Float64},
    )


def _prices(returns: dict[str, list[float | None]]) -> pl.DataFrame:
    rows = [(t, d, r) for t, rs in returns.items() for d, r in zip(DAYS, rs, strict=True)]
    return pl.DataFrame(rows, schema=["ticker", "date", "daily_return"], orient="row")


TICKERS = [f"T{i}" for i in range(10)]
SECTORS = {t: ("Tech" if i < 5 else "Energy") for i, t in enumerate(TICKERS)}


def test_momentum_factor_is_top_minus_bottom_quintile_held_from_the_day_after_formation():
    # D1: momentum 0..9 -> quintile 1 = T0, T1; quintile 5 = T8, T9
    # D2: reversed -> quintile 1 = T8, T9; quintile 5 = T0, T1
    values = pl.concat(
        [
            _values({t: float(i) for i, t in enumerate(TICKERS)}, SECTORS, D1),
            _values({t: float(9 - i) for i, t in enumerate(TICKERS)}, SECTORS, D2),
        ]
    )
    returns = {t: [0.5, 0.01 * i, 0.02 * i, 0.03 * i, 0.01, 0.0] for i, t in enumerate(TICKERS)}
    returns["T9"][2] = None  # no return that day: the leg's mean is over T8 alone
    table = style_factor_returns(values, _prices(returns))
    got = {
        d: r
        for d, r in table.filter(pl.col("series") == "momentum")
        .select("date", "return")
        .iter_rows()
    }
    # Jan 3: (0.08 + 0.09)/2 - (0 + 0.01)/2; Jan 4: 0.16 - (0 + 0.02)/2; Jan 5 (= D2, held from
    # D1): (0.24 + 0.27)/2 - (0 + 0.03)/2; Jan 6: D2's book, all 0.01 -> 0; D1 itself: none
    assert got[DAYS[1]] == pytest.approx(0.085 - 0.005)
    assert got[DAYS[2]] == pytest.approx(0.16 - 0.01)
    assert got[DAYS[3]] == pytest.approx(0.255 - 0.015)
    assert got[DAYS[4]] == pytest.approx(0.0)
    assert DAYS[0] not in got
    # styles without values (size, value, quality here) form no portfolio
    assert set(table["series"]) == {"momentum"}


def test_a_date_with_fewer_names_than_the_minimum_forms_no_factor_portfolio():
    few = {t: float(i) for i, t in enumerate(TICKERS[: MIN_NAMES - 1])}
    table = style_factor_returns(_values(few, SECTORS, D1), _prices({t: [0.0] * 6 for t in few}))
    assert table.is_empty()


def test_sector_returns_are_equal_weight_means_of_the_sectors_names():
    values = _values({t: 1.0 for t in TICKERS}, SECTORS, D1)
    returns = {t: [0.0, 0.01 * i, 0.0, 0.0, 0.0, 0.0] for i, t in enumerate(TICKERS)}
    table = sector_returns(values, _prices(returns)).filter(pl.col("date") == DAYS[1])
    got = dict(table.select("series", "return").iter_rows())
    assert got == pytest.approx({"Tech": 0.02, "Energy": 0.07})  # mean of 0..4 and 5..9 cents
    assert table["n_long"].to_list() == [5, 5]


def _daily_and_returns(noise: float, seed: int = 3, n: int = 400):
    rng = np.random.default_rng(seed)
    days = [date(2020, 1, 1) + timedelta(days=i) for i in range(n)]
    market = rng.normal(0.0004, 0.01, n)
    momentum = rng.normal(0.0002, 0.005, n)
    tech = market + rng.normal(0.0001, 0.004, n)
    energy = market + rng.normal(-0.0001, 0.004, n)
    # sector betas 0.1 and -0.3 meet the constraint 0.75 b_tech + 0.25 b_energy = 0 (name shares)
    sectors = 0.1 * (tech - market) - 0.3 * (energy - market)
    y = 0.0002 + 1.1 * market + 0.4 * momentum + sectors + rng.normal(0, noise, n)
    daily = pl.DataFrame(
        {"strategy": "s", "date": days, "portfolio_return": y, "benchmark_return": market}
    )
    rows = [
        pl.DataFrame({"date": days, "kind": k, "series": s, "return": r, "n_long": nl})
        for k, s, r, nl in (
            ("factor", "momentum", momentum, 50),
            ("sector", "Tech", tech, 30),
            ("sector", "Energy", energy, 10),
        )
    ]
    returns = pl.concat(rows, how="diagonal_relaxed").with_columns(
        pl.col("n_long").cast(pl.Int64), n_short=pl.lit(None, pl.Int64)
    )
    return daily, returns


def test_attribution_recovers_the_exposures_and_its_contributions_add_up_to_the_excess_return():
    daily, returns = _daily_and_returns(noise=0.0)
    table = attribution(daily, returns)
    row = {r["term"]: r for r in table.iter_rows(named=True)}
    # noise-free and inside the constraint: every coefficient comes back, R² = 1
    assert row["alpha"]["coefficient"] == pytest.approx(0.0002, abs=1e-12)
    assert row["market"]["coefficient"] == pytest.approx(1.1, abs=1e-9)
    assert row["momentum"]["coefficient"] == pytest.approx(0.4, abs=1e-9)
    assert row["sector:Tech"]["coefficient"] == pytest.approx(0.1, abs=1e-9)
    assert row["sector:Energy"]["coefficient"] == pytest.approx(-0.3, abs=1e-9)
    assert row["alpha"]["r_squared"] == pytest.approx(1.0, abs=1e-12)
    excess = daily["portfolio_return"].mean() * 252
    assert sum(r["contribution"] for r in row.values()) == pytest.approx(excess, abs=1e-12)
    assert row["alpha"]["contribution"] == pytest.approx(0.0002 * 252, abs=1e-10)
    assert row["momentum"]["annual_mean"] == pytest.approx(
        returns.filter(pl.col("series") == "momentum")["return"].mean() * 252
    )
    assert {r["kind"] for r in row.values()} == {"alpha", "market", "sector", "factor"}


def test_attribution_with_one_sector_is_plain_ols_as_scikit_learn_fits_it():
    daily, returns = _daily_and_returns(noise=0.003)
    returns = returns.filter(pl.col("series") != "Energy")
    table = attribution(daily, returns, risk_free_rate=0.02)
    rf_d = 1.02 ** (1 / 252) - 1
    frame = daily.join(returns.pivot(on="series", index="date", values="return"), on="date").sort(
        "date"
    )
    m = frame["benchmark_return"].to_numpy()
    x = np.column_stack([m - rf_d, frame["Tech"].to_numpy() - m, frame["momentum"].to_numpy()])
    y = frame["portfolio_return"].to_numpy() - rf_d
    model = LinearRegression().fit(x, y)
    got = dict(table.select("term", "coefficient").iter_rows())
    assert got["alpha"] == pytest.approx(model.intercept_, abs=1e-12)
    assert [got["market"], got["sector:Tech"], got["momentum"]] == pytest.approx(
        model.coef_, abs=1e-10
    )
    assert table["r_squared"][0] == pytest.approx(model.score(x, y), abs=1e-12)
    assert table["n_days"][0] == daily.height


def test_quality_tilt_is_the_weighted_z_score_of_the_mean_quality_z_score():
    day = date(2024, 3, 1)
    values = pl.DataFrame(
        {
            "rebalance_date": day,
            "ticker": ["A", "B", "C"],
            "sector": "Tech",
            "in_universe": True,
            "market_cap": 1e9,
            "earnings_yield": 0.1,
            "momentum_12_1": 0.0,
            "roe": [0.1, 0.2, 0.3],  # z -1, 0, 1
            "roa": [0.1, 0.2, 0.3],  # z -1, 0, 1
            "gross_margin": [0.3, 0.2, 0.1],  # z 1, 0, -1
            "debt_to_equity": [2.0, 1.0, None],  # z 1/√2, -1/√2 -> flipped -1/√2, 1/√2
        }
    )
    # quality: A mean(-1, -1, 1, -1/√2), B mean(0, 0, 0, 1/√2), C mean(1, 1, -1)
    q = np.array([(-1 - 1 + 1 - 2**-0.5) / 4, (2**-0.5) / 4, 1 / 3])
    z = (q - q.mean()) / q.std(ddof=1)
    book = pl.DataFrame(
        {"strategy": "s", "rebalance_date": day, "ticker": ["A", "C"], "weight": [0.5, 0.5]}
    )
    tilt = style_tilts(book, values)["quality_tilt"][0]
    assert tilt == pytest.approx(0.5 * z[0] + 0.5 * z[2], abs=1e-12)

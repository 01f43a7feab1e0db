from datetime import date

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quant_pipeline.config.strategies import load_strategies
from quant_pipeline.core.factors.values import FACTOR_NAMES
from quant_pipeline.core.strategies.scoring import score
from quant_pipeline.core.strategies.spec import parse_strategy

D1, D2 = date(2021, 1, 4), date(2021, 4, 1)

SPEC = parse_strategy(
    {
        "name": "hand",
        "rebalance": "quarterly",
        "universe": {"min_market_cap": 1e8},
        "scoring": {
            "method": "weighted_zscore",
            "groups": {
                "g1": {
                    "weight": 0.5,
                    "factors": {"roe": 0.5, "pe": {"weight": 0.5, "higher_is_better": False}},
                },
                "g2": {"weight": 0.5, "factors": {"momentum_12_1": 1.0}},
            },
        },
        "portfolio": {"top_n": 2},
    }
)


def values(rows: list[dict]) -> pl.DataFrame:
    base = {name: None for name in FACTOR_NAMES}
    base.update(price=10.0, market_cap=1e9, avg_volume=1e6, avg_dollar_volume=1e7)
    full = [{"sector": "Energy", "in_universe": True, **base, **r} for r in rows]
    return pl.DataFrame(full, schema_overrides={n: pl.Float64 for n in FACTOR_NAMES})


def hand_rows(d: date) -> list[dict]:
    return [
        {"rebalance_date": d, "ticker": "A", "roe": 1.0, "pe": 10.0, "momentum_12_1": 0.3},
        {"rebalance_date": d, "ticker": "B", "roe": 2.0, "pe": 20.0, "momentum_12_1": 0.1},
        {"rebalance_date": d, "ticker": "C", "roe": 3.0, "pe": 30.0, "momentum_12_1": 0.2},
    ]


def test_weighted_zscore_golden_scores_and_ranks():
    # roe z = (-1, 0, 1); pe z = (-1, 0, 1) flipped to (1, 0, -1); momentum z = (1, -1, 0).
    # g1 = (0, 0, 0); g2 = (1, -1, 0); score = (0.5, -0.5, 0.0) -> ranks A 1, C 2, B 3.
    scores, components = score(values(hand_rows(D1)), SPEC)
    expected = pl.DataFrame(
        {
            "strategy": "hand",
            "rebalance_date": D1,
            "ticker": ["A", "B", "C"],
            "sector": "Energy",
            "eligible": True,
            "score": [0.5, -0.5, 0.0],
            "rank": [1, 3, 2],
        }
    )
    assert_frame_equal(scores, expected)
    a_pe = components.filter((pl.col("ticker") == "A") & (pl.col("component") == "pe"))
    assert a_pe.select("value", "score").row(0) == (10.0, pytest.approx(1.0))
    g2 = components.filter(pl.col("component") == "group:g2").sort("ticker")
    assert g2["score"].to_list() == pytest.approx([1.0, -1.0, 0.0])


def test_missing_factor_renormalises_weights_within_the_group():
    rows = hand_rows(D2)
    rows[2]["pe"] = None
    # pe z over A, B = (-0.7071, 0.7071) flipped; g1 A = (-1 + 0.7071)/2, B = (0 - 0.7071)/2,
    # C = roe only = 1.0; g2 unchanged (1, -1, 0).
    scores, _ = score(values(rows), SPEC)
    h = 2**-0.5
    assert scores["score"].to_list() == pytest.approx(
        [((-1 + h) / 2 + 1) / 2, (-h / 2 - 1) / 2, (1.0 + 0.0) / 2]
    )
    assert scores["rank"].to_list() == [2, 3, 1]


def test_ticker_with_less_than_half_the_weight_is_eligible_but_unranked():
    rows = hand_rows(D1) + [{"rebalance_date": D1, "ticker": "E", "pe": 15.0}]  # 0.25 of weight
    scores, _ = score(values(rows), SPEC)
    e = scores.filter(pl.col("ticker") == "E").row(0, named=True)
    assert (e["eligible"], e["score"], e["rank"]) == (True, None, None)
    assert sorted(scores["rank"].drop_nulls().to_list()) == [1, 2, 3]


def test_ineligible_outliers_do_not_change_anyone_elses_score():
    base, _ = score(values(hand_rows(D1)), SPEC)
    outliers = [
        {
            "rebalance_date": D1,
            "ticker": "X",
            "roe": 1e6,
            "pe": -1e6,
            "momentum_12_1": 50.0,
            "in_universe": False,
        },
        {
            "rebalance_date": D1,
            "ticker": "Y",
            "roe": -1e6,
            "pe": 1e6,
            "momentum_12_1": -50.0,
            "market_cap": 1e6,
        },  # below the strategy's 100M floor
    ]
    with_outliers, components = score(values(hand_rows(D1) + outliers), SPEC)
    assert_frame_equal(with_outliers.filter(pl.col("ticker").is_in(["A", "B", "C"])), base)
    xy = with_outliers.filter(pl.col("ticker").is_in(["X", "Y"]))
    assert xy["eligible"].to_list() == [False, False]
    assert xy["score"].null_count() == 2 and xy["rank"].null_count() == 2
    assert components.filter(pl.col("ticker").is_in(["X", "Y"])).is_empty()


def test_statistics_are_per_rebalance_date():
    rows = hand_rows(D1) + [
        {**r, "roe": r["roe"] * 100, "pe": r["pe"] + 1000, "momentum_12_1": r["momentum_12_1"] * 7}
        for r in hand_rows(D2)
    ]
    scores, _ = score(values(rows), SPEC)
    # Affine changes on D2 leave D2's z-scores, and nothing leaks into D1.
    for d in (D1, D2):
        got = scores.filter(pl.col("rebalance_date") == d)["score"].to_list()
        assert got == pytest.approx([0.5, -0.5, 0.0])


def test_magic_formula_ranks_on_a_hand_example():
    spec = load_strategies(names=["magic_formula"])["magic_formula"]
    rows = [
        {"ticker": "P", "earnings_yield": 0.10, "return_on_capital": 0.50, "sector": "Industrials"},
        {"ticker": "Q", "earnings_yield": 0.20, "return_on_capital": 0.20},
        {"ticker": "R", "earnings_yield": 0.15, "return_on_capital": 0.60, "sector": "Materials"},
        {"ticker": "S", "earnings_yield": 0.30, "return_on_capital": 0.10},
        {"ticker": "F", "earnings_yield": 0.50, "return_on_capital": 0.90, "sector": "Financials"},
        {"ticker": "M", "earnings_yield": 0.40, "return_on_capital": 0.80, "market_cap": 1e7},
        {"ticker": "N", "return_on_capital": 1.0},
    ]
    scores, components = score(values([{"rebalance_date": D1, **r} for r in rows]), spec)
    # Among P, Q, R, S: EY ranks S1 Q2 R3 P4; ROC ranks R1 P2 Q3 S4; sums P6 Q5 R4 S5.
    # Q and S tie at 5: ticker order breaks it. F (Financials) and M (< 50M) are ineligible;
    # N lacks earnings_yield: eligible, unranked.
    got = {
        r["ticker"]: (r["eligible"], r["score"], r["rank"]) for r in scores.iter_rows(named=True)
    }
    assert got == {
        "P": (True, 6.0, 4),
        "Q": (True, 5.0, 2),
        "R": (True, 4.0, 1),
        "S": (True, 5.0, 3),
        "F": (False, None, None),
        "M": (False, None, None),
        "N": (True, None, None),
    }
    ey = components.filter(pl.col("component") == "earnings_yield").sort("ticker")
    assert dict(zip(ey["ticker"], ey["score"], strict=True)) == {
        "N": None,
        "P": 4.0,
        "Q": 2.0,
        "R": 3.0,
        "S": 1.0,
    }

"""Staggered holdings: buy a few names per rebalance, hold each a fixed number of rebalances."""

from datetime import date

import polars as pl
import pytest

from quant_pipeline.core.strategies.spec import parse_strategy
from quant_pipeline.core.strategies.staggered import staggered_weights

D = [date(2020, 1, 2), date(2020, 2, 3), date(2020, 3, 2), date(2020, 4, 1)]


def spec(buy=1, hold=3, cap=None, sizing="slot"):
    return parse_strategy(
        {
            "name": "stag",
            "kind": "staggered",
            "rebalance": "monthly",
            "scoring": {"method": "rank_sum", "factors": {"earnings_yield": None}},
            "portfolio": {"top_n": buy * hold, "max_sector_weight": cap},
            "staggered": {"buy_per_rebalance": buy, "hold_periods": hold, "sizing": sizing},
        }
    )


def scores(rows):
    """rows: (date index, ticker, rank or None, sector)."""
    return pl.DataFrame(
        {
            "rebalance_date": [D[i] for i, *_ in rows],
            "ticker": [t for _, t, _, _ in rows],
            "sector": [s for *_, s in rows],
            "eligible": [r is not None for _, _, r, _ in rows],
            "score": [float(r) if r is not None else None for _, _, r, _ in rows],
            "rank": [r for _, _, r, _ in rows],
        },
        schema_overrides={"rank": pl.Int64},
    )


def book(weights):
    return {
        d: dict(zip(part["ticker"], part["weight"], strict=True))
        for (d,), part in weights.group_by("rebalance_date", maintain_order=True)
    }


def test_one_name_a_month_held_three_months_with_a_delisting_and_a_rebuy():
    # D1 buys A; D2 buys B; D3 buys C (book full: 3 x 1/3).
    # D4: A has been held 3 rebalances -> sold; B has no row (delisted) -> sold; then the best
    # name not held is A again (rank 1): bought back for a new 3-month lot. C stays.
    rows = [
        (0, "A", 1, "Tech"), (0, "B", 2, "Tech"), (0, "C", 3, "Energy"), (0, "Z", None, "Energy"),
        (1, "A", 1, "Tech"), (1, "B", 2, "Tech"), (1, "C", 3, "Energy"),
        (2, "C", 1, "Energy"), (2, "A", 2, "Tech"), (2, "B", 3, "Tech"),
        (3, "A", 1, "Tech"), (3, "C", 2, "Energy"), (3, "D", 3, "Energy"),
    ]  # fmt: skip
    weights, report = staggered_weights(scores(rows), spec())
    third = 1 / 3
    assert book(weights) == {
        D[0]: {"A": third},
        D[1]: {"A": third, "B": third},
        D[2]: {"A": third, "B": third, "C": third},
        D[3]: {"A": third, "B": 0.0, "C": third},
    }
    assert report["n_selected"].to_list() == [1, 2, 3, 2]
    assert report["n_eligible"].to_list() == [3, 3, 3, 3]
    assert report["note"][2] == ""


def test_equal_sizing_spreads_the_book_over_the_names_held():
    rows = [(0, "A", 1, "Tech"), (1, "A", 1, "Tech"), (1, "B", 2, "Tech")]
    weights, _ = staggered_weights(scores(rows), spec(sizing="equal"))
    assert book(weights) == {D[0]: {"A": 1.0}, D[1]: {"A": 0.5, "B": 0.5}}


def test_the_sector_cap_skips_a_full_sector():
    # top_n 6, cap 0.34 -> at most floor(2.04) = 2 names per sector: C (Tech) skipped for D
    rows = [(0, "A", 1, "Tech"), (0, "B", 2, "Tech"), (0, "C", 3, "Tech"), (0, "D", 4, "Energy")]
    weights, report = staggered_weights(scores(rows), spec(buy=3, hold=2, cap=0.34))
    assert book(weights) == {D[0]: {"A": 1 / 6, "B": 1 / 6, "D": 1 / 6}}
    assert report["cap_met"].to_list() == [True]


def test_a_factor_strategy_is_refused():
    factor = parse_strategy(
        {
            "name": "f",
            "rebalance": "monthly",
            "scoring": {"method": "rank_sum", "factors": {"earnings_yield": None}},
            "portfolio": {"top_n": 2},
        }
    )
    with pytest.raises(ValueError, match="not of kind staggered"):
        staggered_weights(scores([(0, "A", 1, "Tech")]), factor)

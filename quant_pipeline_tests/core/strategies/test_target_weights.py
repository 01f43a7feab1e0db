from datetime import date

import polars as pl
from polars.testing import assert_frame_equal

from quant_pipeline.core.strategies.spec import parse_strategy
from quant_pipeline.core.strategies.target_weights import names_per_sector, target_weights

D1, D2, D3 = date(2021, 1, 4), date(2021, 4, 1), date(2021, 7, 1)


def spec(top_n: int, cap: float | None):
    return parse_strategy(
        {
            "name": "pf",
            "rebalance": "quarterly",
            "scoring": {"method": "weighted_zscore", "factors": {"roe": 1.0}},
            "portfolio": {"top_n": top_n, "max_sector_weight": cap},
        }
    )


def scores(d: date, rows: list[tuple[str, str | None, bool, int | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "strategy": "pf",
            "rebalance_date": d,
            "ticker": [r[0] for r in rows],
            "sector": [r[1] for r in rows],
            "eligible": [r[2] for r in rows],
            "score": [None if r[3] is None else 10.0 - r[3] for r in rows],
            "rank": [r[3] for r in rows],
        },
        schema_overrides={"rank": pl.Int64, "score": pl.Float64, "sector": pl.String},
    )


def test_greedy_selection_skips_names_whose_sector_is_full():
    # top 4 with a 50% cap: at most floor(0.5 * 4) = 2 names per sector.
    frame = scores(
        D1,
        [
            ("A", "Energy", True, 1),
            ("B", "Energy", True, 2),
            ("C", "Energy", True, 3),  # skipped: Energy already holds A and B
            ("D", "Materials", True, 4),
            ("E", "Materials", True, 5),
            ("F", "Utilities", True, 6),  # not needed: four names selected
            ("G", "Utilities", False, None),
        ],
    )
    weights, report = target_weights(frame, spec(4, 0.5))
    expected = pl.DataFrame(
        {
            "strategy": "pf",
            "rebalance_date": D1,
            "ticker": ["A", "B", "D", "E"],
            "sector": ["Energy", "Energy", "Materials", "Materials"],
            "weight": 0.25,
            "score": [9.0, 8.0, 6.0, 5.0],
            "rank": [1, 2, 4, 5],
        }
    )
    assert_frame_equal(weights, expected)
    row = report.row(0, named=True)
    assert (row["n_eligible"], row["n_selected"], row["target_n"]) == (6, 4, 4)
    assert (row["max_sector_weight"], row["sector_cap"], row["cap_met"]) == (0.5, 0.5, True)
    assert row["note"] == ""


def test_weights_sum_to_one_per_date_and_unranked_names_are_never_held():
    frame = pl.concat(
        [
            scores(D1, [("A", "Energy", True, 1), ("B", "Materials", True, 2)]),
            scores(
                D2,
                [
                    ("A", "Energy", True, None),
                    ("B", "Energy", True, 1),
                    ("C", None, True, 2),
                    ("D", None, True, 3),
                ],
            ),
        ]
    )
    weights, _ = target_weights(frame, spec(3, None))
    sums = weights.group_by("rebalance_date").agg(pl.col("weight").sum()).sort("rebalance_date")
    assert sums["weight"].to_list() == [1.0, 1.0]
    assert "A" not in weights.filter(pl.col("rebalance_date") == D2)["ticker"].to_list()


def test_impossible_cap_is_reported_not_hidden():
    # Only two ranked names, both Energy: 1/2 each breaches a 30% cap.
    frame = pl.concat(
        [
            scores(D1, [("A", "Energy", True, 1), ("B", "Energy", True, 2)]),
            scores(D3, [("Z", "Energy", False, None)]),
        ]
    )
    weights, report = target_weights(frame, spec(10, 0.3))
    assert weights["weight"].to_list() == [0.5, 0.5]
    d1, d3 = report.sort("rebalance_date").iter_rows(named=True)
    assert (d1["n_selected"], d1["max_sector_weight"], d1["cap_met"]) == (2, 1.0, False)
    assert "only 2 of 10" in d1["note"] and "over the cap" in d1["note"]
    assert (d3["n_eligible"], d3["n_selected"]) == (0, 0)
    assert "portfolio empty" in d3["note"]


def test_names_per_sector_is_floor_of_cap_times_n_but_at_least_one():
    assert names_per_sector(spec(20, 0.3)) == 6
    assert names_per_sector(spec(10, 0.05)) == 1
    assert names_per_sector(spec(7, None)) == 7

"""Signal strategies: membership on the day, books kept only when they change, and weights that
trade the day after the signal."""

from datetime import date, timedelta

import polars as pl
import pytest

from quant_pipeline.core.strategies.signal_weights import (
    changes_only,
    member_on_day,
    signal_constraint_report,
    signal_weights,
)
from quant_pipeline.core.strategies.spec import parse_strategy
from quant_pipeline.core.strategies.technical_signals import trend_following


def test_member_on_day_follows_each_interval_of_a_ticker():
    membership = pl.DataFrame(
        {
            "ticker": ["A", "A"],
            "start_date": [date(2020, 1, 2), date(2020, 1, 7)],
            "end_date": [date(2020, 1, 3), None],
        }
    )
    rows = pl.DataFrame(
        {
            "ticker": ["A", "A", "A", "A", "B"],
            "date": [date(2020, 1, 3), date(2020, 1, 6), date(2020, 1, 8), date(2020, 1, 1),
                     date(2020, 1, 3)],
        }
    )  # fmt: skip
    # in the first interval (end inclusive), between intervals, in the open one, before any,
    # and a ticker that never was a member
    assert member_on_day(rows, membership).to_list() == [True, False, True, False, False]
    assert member_on_day(rows, None).to_list() == [True] * 5


def test_member_on_day_gives_the_same_answer_for_bars_in_ticker_date_order():
    # bars in (ticker, date) order take the join without sorting; any other order is sorted
    # and put back: the same rows get the same answers either way
    membership = pl.DataFrame(
        {
            "ticker": ["A", "B", "A"],
            "start_date": [date(2020, 1, 7), date(2020, 1, 1), date(2020, 1, 2)],
            "end_date": [None, date(2020, 1, 2), date(2020, 1, 3)],
        }
    )
    days = [date(2020, 1, d) for d in (1, 2, 3, 6, 8)]
    ordered = pl.DataFrame({"ticker": ["A"] * 5 + ["B"] * 5, "date": days * 2})
    expected = [False, True, True, False, True, True, True, False, False, False]
    assert member_on_day(ordered, membership).to_list() == expected
    shuffled = ordered.with_row_index("i").sample(fraction=1.0, shuffle=True, seed=3)
    got = member_on_day(shuffled.drop("i"), membership)
    assert got.to_list() == [expected[i] for i in shuffled["i"]]


def test_changes_only_keeps_the_days_the_book_changes():
    d = [date(2020, 1, day) for day in (2, 3, 6, 7, 8)]
    weights = pl.DataFrame(
        {
            "rebalance_date": [d[0], d[1], d[2], d[2], d[3], d[3], d[4]],
            "ticker": ["A", "A", "A", "B", "A", "B", "B"],
            "weight": [0.5, 0.5, 0.5, 0.5, 0.0, 0.5, 0.5],
        }
    )
    # d1 same book as d0; d2 adds B; d3 sells A (book {B}); d4 same book {B}
    kept = changes_only(weights)
    assert kept["rebalance_date"].unique().sort().to_list() == [d[0], d[2], d[3]]
    assert kept.height == 5


def _prices(closes: dict[str, list[float]]) -> pl.DataFrame:
    days = [date(2021, 1, 4) + timedelta(days=i) for i in range(len(next(iter(closes.values()))))]
    frames = []
    for ticker, close in closes.items():
        frames.append(
            pl.DataFrame(
                {
                    "ticker": ticker,
                    "date": days,
                    "open": close,
                    "high": close,
                    "low": close,
                    "close": close,
                    "adj_close": close,
                    "volume": 1000.0,
                }
            )
        )
    return pl.concat(frames)


SIGNAL_SPEC = {
    "name": "trend",
    "kind": "signal",
    "signal": {"name": "trend_following", "params": {"fast": 2, "slow": 4, "atr_stop": 50.0}},
}


def test_weights_start_the_day_after_the_crossover_and_skip_non_members():
    down_up = [10.0, 9.0, 8.0, 7.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0]
    prices = _prices({"X": down_up, "Y": down_up})
    spec = parse_strategy({**SIGNAL_SPEC, "signal": {**SIGNAL_SPEC["signal"], "max_positions": 4}})
    entry_day = (
        trend_following(prices.filter(pl.col("ticker") == "X"), fast=2, slow=4, atr_stop=50.0)
        .filter("entry")["date"]
        .to_list()
    )
    assert len(entry_day) == 1  # one clean upward cross
    membership = pl.DataFrame(
        {"ticker": ["X"], "start_date": [date(2021, 1, 1)], "end_date": [None]},
        schema_overrides={"end_date": pl.Date},
    )
    sectors = pl.DataFrame({"ticker": ["X", "Y"], "sector": ["Energy", "Utilities"]})
    weights, events = signal_weights(prices, spec, membership=membership, sectors=sectors)
    days = prices["date"].unique().sort().to_list()
    next_day = days[days.index(entry_day[0]) + 1]
    # bought after the close of the signal day: first target on the next trading day, 1/4 slot;
    # Y signals too but is not a member; the book never changes again, so one rebalance date
    assert weights.select("rebalance_date", "ticker", "sector", "weight").rows() == [
        (next_day, "X", "Energy", 0.25)
    ]
    assert weights["strategy"].to_list() == ["trend"]
    assert weights["score"][0] > 0  # strength fast/slow - 1 on the day after an upward cross
    assert sorted(events.filter("entry")["ticker"].to_list()) == ["X", "Y"]


def test_a_sector_cap_skips_the_stronger_name_of_a_full_sector_and_the_report_shows_it():
    # three names cross up on the same day; the steeper the climb, the stronger the signal:
    # A (Energy) > B (Energy) > C (Utilities). With 2 slots and a 50% cap (1 name per sector)
    # the book is A and C, not A and B; without the cap it is A and B, 100% Energy.
    base = [10.0, 9.0, 8.0, 7.0, 6.0]
    prices = _prices(
        {
            "A": base + [8.0, 10.0, 12.0, 14.0, 16.0],
            "B": base + [7.5, 9.0, 10.5, 12.0, 13.5],
            "C": base + [7.0, 8.0, 9.0, 10.0, 11.0],
        }
    )
    sectors = pl.DataFrame({"ticker": ["A", "B", "C"], "sector": ["Energy", "Energy", "Utilities"]})
    signal = {**SIGNAL_SPEC["signal"], "max_positions": 2}
    free = parse_strategy({**SIGNAL_SPEC, "signal": signal})
    capped = parse_strategy({**SIGNAL_SPEC, "signal": {**signal, "max_sector_weight": 0.5}})
    uncapped, _ = signal_weights(prices, free, sectors=sectors)
    weights, _ = signal_weights(prices, capped, sectors=sectors)
    first = weights["rebalance_date"].min()
    assert uncapped.filter(pl.col("rebalance_date") == first)["ticker"].to_list() == ["A", "B"]
    assert weights.filter(pl.col("rebalance_date") == first).select("ticker", "weight").rows() == [
        ("A", 0.5),
        ("C", 0.5),
    ]
    report = signal_constraint_report(weights, capped)
    assert report.select(
        "rebalance_date", "n_selected", "target_n", "max_sector_weight", "sector_cap", "cap_met"
    ).rows() == [(first, 2, 2, 0.5, 0.5, True)]
    assert report["n_eligible"].to_list() == [None]
    over = signal_constraint_report(uncapped, free).row(0, named=True)
    assert over["max_sector_weight"] == 1.0 and over["sector_cap"] is None and over["cap_met"]
    strict = parse_strategy({**SIGNAL_SPEC, "signal": {**signal, "max_sector_weight": 0.4}})
    breach = signal_constraint_report(uncapped, strict).row(0, named=True)
    assert not breach["cap_met"] and "over the cap" in breach["note"]


def test_a_signal_sector_cap_without_sectors_is_an_error():
    spec = parse_strategy(
        {
            **SIGNAL_SPEC,
            "signal": {**SIGNAL_SPEC["signal"], "max_positions": 2, "max_sector_weight": 0.3},
        }
    )
    with pytest.raises(ValueError, match="max_sector_weight needs the sectors frame"):
        signal_weights(_prices({"A": [1.0] * 6}), spec)

"""Signal strategies: membership on the day, books kept only when they change, and weights that
trade the day after the signal."""

from datetime import date, timedelta

import polars as pl

from quant_pipeline.core.strategies.signal_weights import (
    changes_only,
    member_on_day,
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

"""Golden tests of suspect moves and of the corporate actions that correct them.

Ticker P spins off a subsidiary on Wednesday 2024-01-03: close 70 -> 38.5 (-45%), the spun-off
shares worth 30 per P share. Ticker Q pays a share dividend of one new share per share on
2024-01-04: close 40 -> 20.4 (-49%). Ticker R falls 30% (below the 40% threshold).
"""

from datetime import date

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quant_pipeline.core.backtest.bias_labels import data_labels, suspect_moves_label
from quant_pipeline.core.data.curation import adjusted_close
from quant_pipeline.core.data.suspect_moves import (
    HELD_THROUGH_SCHEMA,
    SUSPECT_MOVES_SCHEMA,
    held_through,
    suspect_moves,
)

DAYS = [date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4), date(2024, 1, 5)]
CLOSES = {
    "P": [70.0, 38.5, 39.0, 39.0],
    "Q": [40.0, 40.0, 20.4, 20.4],
    "R": [10.0, 7.0, 7.0, 7.0],
}
SPINOFF = {"ticker": "P", "date": date(2024, 1, 3), "action": "spinoff", "value": 30.0}
SHARE_DIVIDEND = {"ticker": "Q", "date": date(2024, 1, 4), "action": "stock_dividend", "value": 1.0}


def prices(actions: pl.DataFrame | None = None) -> pl.DataFrame:
    frame = pl.DataFrame(
        [(t, d, c) for t, closes in CLOSES.items() for d, c in zip(DAYS, closes, strict=True)],
        schema={"ticker": pl.String, "date": pl.Date, "close": pl.Float64},
        orient="row",
    )
    adjusted = adjusted_close(frame, actions)
    return adjusted.with_columns(daily_return=pl.col("adj_close").pct_change().over("ticker"))


def test_moves_beyond_the_threshold_without_an_action_on_file_are_listed():
    out = suspect_moves(prices(), None, threshold=0.4)
    expected = pl.DataFrame(
        {
            "ticker": ["P", "Q"],
            "date": [date(2024, 1, 3), date(2024, 1, 4)],
            "size": [38.5 / 70.0 - 1.0, 20.4 / 40.0 - 1.0],  # -45%, -49%
            "previous_close": [70.0, 40.0],
            "close": [38.5, 20.4],
            "threshold": [0.4, 0.4],
        },
        schema=SUSPECT_MOVES_SCHEMA,
    )
    assert_frame_equal(out, expected)
    # a lower threshold catches R's -30% as well
    assert suspect_moves(prices(), None, threshold=0.25)["ticker"].to_list() == ["P", "Q", "R"]


def test_a_spinoff_and_a_share_dividend_on_file_correct_the_prices_and_clear_the_moves():
    actions = pl.DataFrame([SPINOFF, SHARE_DIVIDEND])
    px = prices(actions)
    # P: every close before 2024-01-03 times 38.5 / (38.5 + 30): 70 -> 39.343, so the return of
    # the day is the holder's (38.5 + 30) / 70 - 1 = -2.14%
    p = px.filter(pl.col("ticker") == "P")
    assert p["adj_close"].to_list() == pytest.approx([70.0 * 38.5 / 68.5, 38.5, 39.0, 39.0])
    assert p["daily_return"][1] == pytest.approx(68.5 / 70.0 - 1.0)
    # Q: closes before 2024-01-04 times 1 / (1 + 1) = 0.5: 40 -> 20, return 20.4/20 - 1 = 2%
    q = px.filter(pl.col("ticker") == "Q")
    assert q["adj_close"].to_list() == pytest.approx([20.0, 20.0, 20.4, 20.4])
    assert suspect_moves(px, actions, threshold=0.4).is_empty()


def test_an_action_on_file_excuses_the_move_even_when_the_prices_were_given_adjusted():
    actions = pl.DataFrame([SPINOFF | {"date": date(2024, 1, 2)}])  # wrong day: not excused
    assert suspect_moves(prices(), actions, 0.4)["ticker"].to_list() == ["P", "Q"]
    assert suspect_moves(prices(), pl.DataFrame([SPINOFF]), 0.4)["ticker"].to_list() == ["Q"]


def test_the_threshold_must_be_positive():
    with pytest.raises(ValueError, match="threshold must be > 0"):
        suspect_moves(prices(), None, threshold=0.0)


TRADES = pl.DataFrame(
    {
        "strategy": ["s1", "s1", "s1", "s2"],
        "ticker": ["P", "Q", "Q", "P"],
        # bought at the close of the move day: does not earn it; exits on the move day: earns it
        "entry_date": [date(2024, 1, 2), date(2024, 1, 4), date(2023, 12, 1), date(2023, 12, 1)],
        "exit_date": [None, None, date(2024, 1, 4), date(2024, 1, 2)],
    },
    schema_overrides={"exit_date": pl.Date},
)


def test_a_position_earns_a_move_after_its_entry_day_up_to_its_exit_day():
    moves = suspect_moves(prices(), None, 0.4)
    out = held_through(TRADES, moves)
    expected = pl.DataFrame(
        {
            "strategy": ["s1", "s1"],
            "ticker": ["P", "Q"],
            "entry_date": [date(2024, 1, 2), date(2023, 12, 1)],
            "exit_date": [None, date(2024, 1, 4)],
            "date": [date(2024, 1, 3), date(2024, 1, 4)],
            "size": [38.5 / 70.0 - 1.0, 20.4 / 40.0 - 1.0],
        },
        schema=HELD_THROUGH_SCHEMA,
    )
    assert_frame_equal(out, expected)


def test_the_suspect_moves_label_counts_the_moves_and_names_those_held():
    moves = suspect_moves(prices(), None, 0.4)
    held = held_through(TRADES, moves)
    labels = data_labels(["s1", "s2"], pl.DataFrame(schema={"ticker": pl.String}), moves, held)
    values = dict(
        labels.filter(pl.col("label") == "suspect_moves").select("strategy", "value").iter_rows()
    )
    head = (
        "2 one-day moves of 40% or more with no corporate action on file "
        "(curated.suspect_moves), taken as returns"
    )
    assert values == {
        "s1": f"{head}; 2 held: P 2024-01-03, Q 2024-01-04",
        "s2": f"{head}; 0 held",
    }
    assert suspect_moves_label(moves.head(0), held.head(0)).startswith("0: no one-day move")


def test_a_tickers_first_row_has_no_previous_close_and_row_order_does_not_matter():
    """The previous close is the same ticker's: on a ticker's first row (here R's, given a
    return by its vendor) it is null, not the close of the ticker above; shuffled rows give
    the same table."""
    px = prices().with_columns(
        daily_return=pl.when((pl.col("ticker") == "R") & (pl.col("date") == DAYS[0]))
        .then(-0.5)
        .otherwise(pl.col("daily_return"))
    )
    out = suspect_moves(px, None, threshold=0.4)
    assert out.select("ticker", "date", "previous_close").rows() == [
        ("P", date(2024, 1, 3), 70.0),
        ("Q", date(2024, 1, 4), 40.0),
        ("R", DAYS[0], None),
    ]
    shuffled = px.sample(fraction=1.0, shuffle=True, seed=3)
    assert not shuffled.equals(px)
    assert_frame_equal(suspect_moves(shuffled, None, threshold=0.4), out)

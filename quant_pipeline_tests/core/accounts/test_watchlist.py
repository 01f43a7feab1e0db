"""Watchlist status on tiny hand-made tables: latest price, scores, holdings and signal state."""

from datetime import UTC, date, datetime

import polars as pl
import pytest

from quant_pipeline.core.accounts.watchlist import (
    STATUS_SCHEMA,
    WatchlistError,
    normalize_symbols,
    watchlist_status,
)

D1, D2, D3 = date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4)
ADDED = datetime(2024, 1, 1, tzinfo=UTC)


def _symbols(*names):
    return pl.DataFrame({"symbol": list(names), "added_at": [ADDED] * len(names)})


PRICES = pl.DataFrame(
    {"ticker": ["A", "A", "B", "C"], "date": [D1, D2, D2, D1], "close": [10.0, 11.0, 20.0, 5.0]}
)
SCORES = pl.DataFrame(
    {
        "strategy": ["value", "value", "value", "value"],
        "rebalance_date": [D1, D2, D2, D2],
        "ticker": ["A", "A", "B", "C"],
        "eligible": [True, True, True, False],
        "score": [0.1, 0.9, -0.2, None],
        "rank": [2, 1, 2, None],
    }
)
WEIGHTS = pl.DataFrame(
    {
        "strategy": ["value", "value", "trend", "trend"],
        "rebalance_date": [D1, D2, D2, D3],
        "ticker": ["B", "A", "B", "C"],
        "weight": [1.0, 1.0, 1.0, 1.0],
    }
)
SIGNALS = pl.DataFrame(
    {
        "strategy": ["trend"] * 4,
        "ticker": ["B", "B", "C", "A"],
        "date": [D1, D2, D3, D1],
        "entry": [True, False, True, True],
        "exit": [False, True, False, False],
    }
)


def _status(*names):
    return watchlist_status(_symbols(*names), PRICES, SCORES, WEIGHTS, SIGNALS)


def test_each_symbol_gets_its_latest_price_and_one_row_per_strategy_that_saw_it():
    status = _status("A", "B")
    assert status.schema == pl.Schema(STATUS_SCHEMA)
    rows = {(r["symbol"], r["strategy"]): r for r in status.iter_rows(named=True)}
    assert set(rows) == {("A", "value"), ("A", "trend"), ("B", "value"), ("B", "trend")}
    assert (rows["A", "value"]["last_date"], rows["A", "value"]["last_close"]) == (D2, 11.0)
    # value's latest rebalance is D2: A ranked 1st with 0.9 and held; B ranked 2nd, not held
    a = rows["A", "value"]
    assert (a["as_of"], a["score"], a["rank"], a["held"], a["weight"]) == (D2, 0.9, 1, True, 1.0)
    b = rows["B", "value"]
    assert (b["score"], b["rank"], b["held"], b["weight"]) == (-0.2, 2, False, None)


def test_signal_state_reads_the_strategys_last_signal_day():
    rows = {(r["symbol"], r["strategy"]): r for r in _status("A", "B", "C").iter_rows(named=True)}
    # trend's last signal day is D3: C entered on it; B exited on D2 (after entering on D1);
    # A entered on D1 and never exited, so it is still in position
    assert rows["C", "trend"]["signal_state"] == "entry"
    assert rows["B", "trend"]["signal_state"] == "none"
    assert rows["A", "trend"]["signal_state"] == "holding"
    assert rows["A", "trend"]["last_signal_date"] == D1
    # trend's book on D3 holds C only; B was held on D2 but is not any more
    assert (rows["C", "trend"]["held"], rows["B", "trend"]["held"]) == (True, False)
    assert rows["A", "value"]["signal_state"] is None  # a factor strategy has no signals


def test_an_exit_on_the_last_signal_day_reads_exit():
    signals = SIGNALS.with_columns(pl.lit(D3).alias("date"))  # every event on D3
    status = watchlist_status(_symbols("B"), PRICES, SCORES, WEIGHTS, signals)
    [row] = status.filter(pl.col("strategy") == "trend").iter_rows(named=True)
    assert row["signal_state"] == "exit"


def test_a_symbol_no_strategy_has_seen_keeps_one_row_with_a_null_strategy():
    status = _status("ZZZ")
    assert status.height == 1
    row = status.row(0, named=True)
    assert row["symbol"] == "ZZZ" and row["strategy"] is None and row["last_close"] is None


def test_symbols_are_trimmed_upper_cased_and_deduplicated_in_order():
    assert normalize_symbols([" aapl", "BRK-B", "AAPL", "^gspc", "eurusd=x"]) == [
        "AAPL",
        "BRK-B",
        "^GSPC",
        "EURUSD=X",
    ]


def test_a_bad_symbol_is_refused_with_every_offender_named():
    with pytest.raises(WatchlistError, match=r"'AA PL', ''"):
        normalize_symbols(["MSFT", "AA PL", ""])

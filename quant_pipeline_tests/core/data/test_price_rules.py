"""The price rules shared by curation and the refresh guard: spikes, as-of dates, refusals.

Tiny hand-built series: ticker A closes at 100 every weekday of March 2024 unless a test
changes a day; a stored and an incoming copy of the same source are compared.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from quant_pipeline.core.data.curation import curate_prices
from quant_pipeline.core.data.price_rules import SpikeRule, guard_replacements, spike_flags
from quant_pipeline.core.data.schema import RAW_PRICES, conform

DAYS = [date(2024, 3, 1) + timedelta(days=i) for i in range(31)]
DAYS = [d for d in DAYS if d.weekday() < 5]  # 21 weekdays
STORED_AT = datetime(2024, 3, 31, tzinfo=UTC)
NOW = datetime(2024, 4, 2, tzinfo=UTC)


def series(closes: dict[int, float | None] | None = None, at: datetime = STORED_AT, **cols):
    """Raw prices of A on DAYS: close 100 (open 99, high 101, low 98) unless ``closes`` or
    ``cols`` (column -> {day index: value}) say otherwise."""
    rows = []
    for i, d in enumerate(DAYS):
        row = {"ticker": "A", "date": d, "open": 99.0, "high": 101.0, "low": 98.0,
               "close": 100.0, "adj_close": 100.0, "volume": 1000.0}  # fmt: skip
        if closes and i in closes:
            row["close"] = row["adj_close"] = closes[i]
        for col, changes in cols.items():
            row[col] = changes.get(i, row[col])
        rows.append(row)
    frame = pl.DataFrame(rows).with_columns(
        source=pl.lit("files"), ingested_at=pl.lit(at).cast(pl.Datetime("us", "UTC"))
    )
    return conform(frame, RAW_PRICES)


def test_a_spike_that_reverses_is_flagged_from_the_jump_to_the_day_before_the_return():
    values = pl.Series([100.0, 100.0, 1e6, 1e6, 1e6, 100.0, 100.0])
    flags = spike_flags(pl.Series(["A"] * 7), values, SpikeRule(threshold=3.0, reversal_rows=5))
    assert flags.tolist() == [False, False, True, True, True, False, False]


def test_a_split_like_level_shift_that_does_not_come_back_is_not_a_spike():
    values = pl.Series([100.0, 100.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0])
    assert not spike_flags(pl.Series(["A"] * 8), values, SpikeRule()).any()


def test_a_move_within_the_threshold_or_reversing_too_late_is_not_a_spike():
    tickers = pl.Series(["A"] * 9)
    assert not spike_flags(
        tickers, pl.Series([100.0, 390.0, 100.0] + [100.0] * 6), SpikeRule()
    ).any()
    late = pl.Series([100.0, 500.0, 500.0, 500.0, 100.0, 100.0, 100.0, 100.0, 100.0])
    assert not spike_flags(tickers, late, SpikeRule(reversal_rows=2)).any()
    assert spike_flags(tickers, late, SpikeRule(reversal_rows=3)).tolist()[1:4] == [True] * 3


def test_a_spike_never_spans_two_tickers():
    flags = spike_flags(pl.Series(["A", "A", "B", "B"]), pl.Series([100.0, 100.0, 1e6, 100.0]),
                        SpikeRule())  # fmt: skip
    assert not flags.any()


def test_curation_quarantines_a_one_million_close_spike_with_its_reason():
    raw = series({10: 1_000_000.0})
    plain = curate_prices(raw)
    assert plain.prices.height == 21  # without the rule the spike is accepted
    out = curate_prices(raw, as_of=date(2024, 4, 1), spikes=SpikeRule())
    assert out.prices.height == 20
    assert DAYS[10] not in out.prices["date"].to_list()
    (row,) = out.rejected.to_dicts()
    assert row["date"] == DAYS[10]
    assert "one-day spike in close (move beyond x4 reversed within 5 rows)" in row["reason"]
    # The day after the hole returns 0 against the last good day, not -99.99%.
    assert out.prices.filter(pl.col("date") == DAYS[11])["daily_return"].item() == pytest.approx(0)


def test_curation_quarantines_rows_dated_after_the_as_of_date():
    raw = series()
    future = (
        series(at=STORED_AT)
        .head(2)
        .with_columns(date=pl.Series([date(2030, 1, 2), date(2031, 6, 3)]))
    )
    out = curate_prices(pl.concat([raw, future]), as_of=date(2024, 4, 1), spikes=SpikeRule())
    assert out.prices["date"].max() == DAYS[-1]
    assert out.rejected["date"].to_list() == [date(2030, 1, 2), date(2031, 6, 3)]
    assert set(out.rejected["reason"]) == {"date after as-of 2024-04-01"}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"closes": {9: -5.0, 10: -5.0, 11: -5.0}}, "close <= 0"),
        ({"high": {9: 1.0, 10: 1.0, 11: 1.0}}, "high < low"),
        ({"closes": {9: 1e6, 10: 1e6, 11: 1e6}}, "one-day spike in close"),
        ({"closes": {9: None, 10: None, 11: None}}, "close is null where the stored row has 100"),
    ],
)
def test_an_incoming_row_that_would_make_a_valid_stored_row_worse_is_refused(change, reason):
    stored = series()
    closes = change.get("closes")
    cols = {k: v for k, v in change.items() if k != "closes"}
    incoming = series(closes, at=NOW, **cols).filter(pl.col("date") >= DAYS[5])
    out = guard_replacements(stored, incoming, SpikeRule(), NOW)
    assert out.refused["date"].to_list() == DAYS[9:12]
    assert all(reason in r for r in out.refused["reason"])
    assert out.refused["stored_close"].to_list() == [100.0] * 3
    assert out.accepted.height == incoming.height - 3
    assert DAYS[10] not in out.accepted["date"].to_list()
    assert out.restatements.is_empty()


def test_a_valid_restatement_is_accepted_and_recorded_with_old_and_new_values():
    stored = series()
    incoming = series({3: 101.0}, at=NOW)  # the whole history again, one day corrected
    out = guard_replacements(stored, incoming, SpikeRule(), NOW)
    assert out.refused.is_empty()
    assert out.accepted.height == 21
    got = out.restatements.select("date", "column", "old_value", "new_value").to_dicts()
    assert got == [
        {"date": DAYS[3], "column": "adj_close", "old_value": 100.0, "new_value": 101.0},
        {"date": DAYS[3], "column": "close", "old_value": 100.0, "new_value": 101.0},
    ]
    assert out.restatements["old_ingested_at"].to_list() == [STORED_AT, STORED_AT]


def test_a_bad_stored_row_may_be_replaced_by_a_good_one():
    stored = series({4: -1.0})
    out = guard_replacements(stored, series(at=NOW), SpikeRule(), NOW)
    assert out.refused.is_empty()
    assert out.restatements.filter(pl.col("column") == "close")["new_value"].to_list() == [100.0]


def test_new_days_are_never_refused_by_the_guard():
    stored = series().filter(pl.col("date") < DAYS[15])
    incoming = series({17: -5.0}, at=NOW).filter(pl.col("date") >= DAYS[10])
    out = guard_replacements(stored, incoming, SpikeRule(), NOW)
    assert out.refused.is_empty() and out.accepted.height == incoming.height


def test_spike_scan_finishes_on_two_million_rows_that_all_jump():
    n = 2_000_000
    values = pl.Series(np.where(np.arange(n) % 2 == 0, 100.0, 1e6))  # every row a candidate
    flags = spike_flags(pl.Series(["A"] * n), values, SpikeRule())
    assert flags.sum() == n // 2 - 1  # the last 1e6 has no day after it to come back on


def test_a_4_to_1_split_followed_by_ordinary_moves_is_not_a_spike():
    # The demo's OLNO: 24.05 -> 5.82 on its 4:1 split day, then 6.26 (within x4 of 24.05, but
    # not back within x2 of it).
    values = pl.Series([23.67, 24.36, 24.05, 5.82, 5.9, 6.1, 6.26, 6.04, 6.21])
    assert not spike_flags(pl.Series(["A"] * 9), values, SpikeRule()).any()


def test_a_quarantined_spike_keeps_every_raw_column_of_its_own_row_behind_a_refused_row():
    # a refused row (close <= 0) before the spike shifts every later row of the accepted set;
    # the quarantined row must still be the spike's own raw row, whatever the input order
    raw = series({3: -1.0, 10: 1_000_000.0}, volume={10: 4242.0}, open={10: 7.0})
    out = curate_prices(raw.reverse(), as_of=date(2024, 4, 1), spikes=SpikeRule())
    spike = out.rejected.filter(pl.col("reason").str.contains("spike"))
    expected = raw.filter(pl.col("date") == DAYS[10])
    assert spike.drop("reason").rows() == expected.select(spike.drop("reason").columns).rows()
    assert out.rejected.filter(pl.col("date") == DAYS[3])["reason"].item().startswith("close <= 0")

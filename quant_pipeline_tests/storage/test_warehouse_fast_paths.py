"""write_raw's fast paths (key-sorted frames, empty tables) store what the general path stores."""

from datetime import UTC, date, datetime

import polars as pl
from polars.testing import assert_frame_equal

from quant_pipeline.core.data.schema import RAW_FUNDAMENTALS, RAW_PRICES, conform
from quant_pipeline.storage.warehouse import Warehouse, WriteStats

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = datetime(2024, 2, 1, tzinfo=UTC)
T2 = datetime(2024, 3, 1, tzinfo=UTC)
Q4 = date(2023, 12, 31)


def fundamentals(values: dict[str, float], ingested_at: datetime) -> pl.DataFrame:
    """One row per item, in key order (ticker, period_end, period_type, item, source)."""
    items = sorted(values)
    n = len(items)
    return conform(
        pl.DataFrame(
            {
                "ticker": ["A"] * n,
                "period_end": [Q4] * n,
                "period_type": ["Q"] * n,
                "item": items,
                "value": [values[i] for i in items],
                "source": ["demo"] * n,
                "ingested_at": [ingested_at] * n,
            }
        ),
        RAW_FUNDAMENTALS,
    )


def stored(wh: Warehouse) -> pl.DataFrame:
    frame = wh.read_raw("fundamentals")
    return frame.sort(frame.columns)


def run_scenario(wh: Warehouse, shuffle: bool) -> list[WriteStats]:
    # reverse row order defeats the key-sorted fast path and takes the general window path
    prep = (lambda f: f.reverse()) if shuffle else (lambda f: f)
    return [
        wh.write_raw("fundamentals", prep(fundamentals({"cash": 1.0, "revenue": 100.0}, T0))),
        # cash unchanged, revenue restated, ebit new
        wh.write_raw(
            "fundamentals", prep(fundamentals({"cash": 1.0, "ebit": 7.0, "revenue": 90.0}, T1))
        ),
        # a late delivery of an older vintage: older than what is stored for cash and revenue
        wh.write_raw("fundamentals", prep(fundamentals({"cash": 2.0, "revenue": 90.0}, T0))),
        wh.write_raw("fundamentals", prep(fundamentals({"cash": 1.0, "revenue": 90.0}, T2))),
    ]


def test_vintages_from_key_sorted_frames_match_the_general_path(tmp_path):
    fast, general = Warehouse(tmp_path / "fast.duckdb"), Warehouse(tmp_path / "general.duckdb")
    fast_stats = run_scenario(fast, shuffle=False)
    general_stats = run_scenario(general, shuffle=True)
    assert fast_stats == general_stats
    # T0: 2 new; T1: revenue restated + ebit new, cash same; T2: nothing changed since T1
    assert fast_stats[0] == WriteStats(2, 0, 0)
    assert fast_stats[1] == WriteStats(2, 0, 1)
    assert fast_stats[3] == WriteStats(0, 0, 2)
    assert_frame_equal(stored(fast), stored(general))


def test_first_load_of_sorted_prices_inserts_every_row_and_a_rerun_changes_nothing(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    frame = conform(
        pl.DataFrame(
            {
                "ticker": ["A", "A", "B"],
                "date": [date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 2)],
                "close": [1.0, 2.0, 3.0],
                "source": ["demo"] * 3,
                "ingested_at": [T0] * 3,
            }
        ),
        RAW_PRICES,
    )
    assert wh.write_raw("prices", frame) == WriteStats(3, 0, 0)
    assert wh.write_raw("prices", frame) == WriteStats(0, 0, 3)
    assert wh.row_count("raw.prices") == 3

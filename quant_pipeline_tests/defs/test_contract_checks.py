"""The contract asset checks, invoked directly on small warehouses."""

from datetime import date

import dagster as dg
import polars as pl

from quant_pipeline.app.market_calendar import sessions_behind
from quant_pipeline.defs import checks
from quant_pipeline.defs.checks import curated_prices_unique_per_ticker_day
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.storage.warehouse import Warehouse


def _check(tmp_path, rows):
    path = tmp_path / "quant.duckdb"
    prices = pl.DataFrame(rows, schema={"ticker": pl.String, "date": pl.Date}, orient="row")
    Warehouse(path).replace_table("curated.prices", prices.with_columns(close=pl.lit(1.0)))
    return curated_prices_unique_per_ticker_day(warehouse=WarehouseResource(path=str(path)))


def test_sorted_unique_keys_pass(tmp_path):
    d1, d2 = date(2024, 1, 2), date(2024, 1, 3)
    result = _check(tmp_path, [("A", d1), ("A", d2), ("B", d1)])
    assert result.passed
    assert result.metadata["duplicates"].value == 0


def test_a_duplicate_is_found_whether_or_not_the_table_is_sorted(tmp_path):
    d1, d2 = date(2024, 1, 2), date(2024, 1, 3)
    sorted_dup = _check(tmp_path, [("A", d1), ("A", d2), ("A", d2), ("B", d1)])
    assert not sorted_dup.passed and sorted_dup.metadata["duplicates"].value == 1
    unsorted_dup = _check(tmp_path, [("B", d1), ("A", d2), ("A", d1), ("A", d2)])
    assert not unsorted_dup.passed and unsorted_dup.metadata["duplicates"].value == 1
    unsorted_unique = _check(tmp_path, [("B", d1), ("A", d2), ("A", d1)])
    assert unsorted_unique.passed


def test_sessions_behind_counts_nyse_sessions_not_weekdays():
    # Good Friday 2024-03-29 is an NYSE holiday: 03-27 and 03-28 are missing, not three days
    assert sessions_behind(date(2024, 3, 26), date(2024, 4, 1)) == 2
    assert sessions_behind(date(2024, 3, 28), date(2024, 4, 1)) == 0  # today not counted
    assert sessions_behind(date(2024, 4, 1), date(2024, 4, 1)) == 0
    # 2023-12-22 (Fri) -> 2024-01-03: 12-26, 12-27, 12-28, 12-29, 01-02 (Christmas, New Year off)
    assert sessions_behind(date(2023, 12, 22), date(2024, 1, 3)) == 5


def _fresh(tmp_path, monkeypatch, latest: date, today: date, limit: int):
    path = tmp_path / "quant.duckdb"
    Warehouse(path).replace_table(
        "curated.prices", pl.DataFrame({"ticker": ["A"], "date": [latest], "close": [1.0]})
    )
    monkeypatch.setattr(checks, "market_today", lambda: today)
    return checks.curated_prices_are_fresh(
        market=MarketDataResource(source="demo", stale_after_sessions=limit),
        warehouse=WarehouseResource(path=str(path)),
    )


def test_the_freshness_check_warns_past_the_session_limit(tmp_path, monkeypatch):
    ok = _fresh(tmp_path, monkeypatch, date(2024, 3, 26), date(2024, 4, 1), limit=2)
    assert ok.passed and ok.metadata["sessions_behind"].value == 2
    stale = _fresh(tmp_path, monkeypatch, date(2024, 3, 26), date(2024, 4, 1), limit=1)
    assert not stale.passed and stale.severity == dg.AssetCheckSeverity.WARN
    assert "2 NYSE session(s) before 2024-04-01 missing (limit 1" in stale.description

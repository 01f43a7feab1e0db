"""The contract asset checks, invoked directly on small warehouses."""

from datetime import date

import polars as pl

from quant_pipeline.defs.checks import curated_prices_unique_per_ticker_day
from quant_pipeline.defs.resources import WarehouseResource
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

"""Content fingerprints of warehouse tables: what the dataset version is made of."""

from datetime import UTC, date, datetime

import polars as pl

from quant_pipeline.storage.warehouse import Warehouse

PRICES = pl.DataFrame(
    {
        "ticker": ["A", "A", "B"],
        "date": [date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 2)],
        "close": [10.0, 11.0, None],
    }
)


def _fingerprint(tmp_path, name, frame, **kw):
    wh = Warehouse(tmp_path / f"{name}.duckdb")
    wh.replace_table("curated.prices", frame)
    return wh.content_fingerprints(["curated.prices", "curated.missing"], **kw)


def test_the_same_rows_in_another_order_have_the_same_fingerprint(tmp_path):
    first = _fingerprint(tmp_path, "a", PRICES)
    again = _fingerprint(tmp_path, "b", PRICES.reverse())
    assert first == again
    assert first["curated.prices"]["rows"] == 3
    assert "curated.missing" not in first  # a table that does not exist is left out


def test_one_changed_value_or_a_duplicated_row_changes_it(tmp_path):
    first = _fingerprint(tmp_path, "a", PRICES)
    changed = _fingerprint(tmp_path, "b", PRICES.with_columns(pl.col("close").fill_null(12.0)))
    doubled = _fingerprint(tmp_path, "c", pl.concat([PRICES, PRICES.head(1)]))
    assert changed["curated.prices"]["hash"] != first["curated.prices"]["hash"]
    assert doubled["curated.prices"]["hash"] != first["curated.prices"]["hash"]
    assert doubled["curated.prices"]["rows"] == 4


def test_excluded_columns_do_not_count(tmp_path):
    def loaded(at):
        return PRICES.with_columns(ingested_at=pl.lit(at, pl.Datetime("us", "UTC")))

    monday = _fingerprint(
        tmp_path, "a", loaded(datetime(2024, 1, 8, tzinfo=UTC)), exclude_columns=["ingested_at"]
    )
    tuesday = _fingerprint(
        tmp_path, "b", loaded(datetime(2024, 1, 9, tzinfo=UTC)), exclude_columns=["ingested_at"]
    )
    assert monday == tuesday == _fingerprint(tmp_path, "c", PRICES)

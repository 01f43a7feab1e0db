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


def test_cumulative_hashes_change_only_from_the_changed_date(tmp_path) -> None:
    """The running hash per date: rows up to a date, unchanged before a changed row."""
    from datetime import date

    import polars as pl

    from quant_pipeline.storage.warehouse import Warehouse

    wh = Warehouse(tmp_path / "w.duckdb")
    days = [date(2024, 1, d) for d in (2, 3, 4)]
    frame = pl.DataFrame({"date": days * 2, "ticker": ["A"] * 3 + ["B"] * 3, "x": [1.0] * 6})
    wh.replace_table("t.prices", frame)
    before = wh.cumulative_hashes("t.prices", "date", ["ticker", "x"])
    assert before["rows"].to_list() == [2, 4, 6]
    wh.replace_table(
        "t.prices",
        frame.with_columns(pl.when(pl.col("date") == days[1]).then(2.0).otherwise(1.0).alias("x")),
    )
    after = wh.cumulative_hashes("t.prices", "date", ["ticker", "x"])
    assert after["hash"][0] == before["hash"][0]
    assert after["hash"][1] != before["hash"][1] and after["hash"][2] != before["hash"][2]
    assert wh.cumulative_hashes("t.missing", "date").is_empty()


def test_replace_keys_deletes_the_keys_and_inserts_the_rows(tmp_path) -> None:
    from datetime import date

    import polars as pl
    import pytest

    from quant_pipeline.storage.warehouse import Warehouse, WarehouseError

    wh = Warehouse(tmp_path / "w.duckdb")
    d1, d2 = date(2024, 1, 2), date(2024, 2, 1)
    wh.replace_table(
        "f.scores",
        pl.DataFrame({"strategy": ["a", "a", "b"], "rebalance_date": [d1, d2, d1], "v": [1, 2, 3]}),
    )
    keys = pl.DataFrame({"strategy": ["a", "b"], "rebalance_date": [d2, d1]})
    new = pl.DataFrame({"strategy": ["a"], "rebalance_date": [d2], "v": [20]})
    assert wh.replace_keys("f.scores", new, keys) == 1
    assert sorted(wh.read_table("f.scores").rows()) == [("a", d1, 1), ("a", d2, 20)]
    stray = pl.DataFrame({"strategy": ["c"], "rebalance_date": [d1], "v": [0]})
    with pytest.raises(WarehouseError, match="not among the keys"):
        wh.replace_keys("f.scores", stray, keys)
    assert wh.replace_keys("f.scores", pl.DataFrame(), keys.head(0)) == 0

"""A table written in batches (curated.prices by ticker batch) and reads from per-ticker starts
(the refresh guard): atomic, exact, bounded."""

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quant_pipeline.core.data.schema import RAW_PRICES, conform
from quant_pipeline.storage.warehouse import Warehouse, WarehouseError

T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def wh(tmp_path) -> Warehouse:
    return Warehouse(tmp_path / "quant.duckdb")


def _tables(wh: Warehouse) -> list[str]:
    return [f"{s}.{t}" for s, t in wh.tables().select("schema", "table").iter_rows()]


def test_batches_replace_the_table_with_their_rows_in_order(wh):
    wh.replace_table("curated.things", pl.DataFrame({"old": ["x"]}))
    batches = [pl.DataFrame({"a": [1, 2], "b": ["p", "q"]}), pl.DataFrame({"a": [3], "b": ["r"]})]
    assert wh.replace_table_batches("curated.things", iter(batches)) == 3
    assert_frame_equal(wh.read_table("curated.things"), pl.concat(batches))
    assert _tables(wh) == ["curated.things"]  # no staging table left


def test_a_batch_that_fails_keeps_the_old_table_and_leaves_no_staging_table(wh):
    wh.replace_table("curated.things", pl.DataFrame({"a": [7, 8]}))

    def failing():
        yield pl.DataFrame({"a": [1]})
        yield pl.DataFrame({"a": [2]})
        raise ValueError("batch 3 broke a rule")

    with pytest.raises(ValueError, match="batch 3"):
        wh.replace_table_batches("curated.things", failing())
    assert wh.read_table("curated.things")["a"].to_list() == [7, 8]
    assert _tables(wh) == ["curated.things"]


def test_a_batch_with_other_columns_is_refused_naming_the_table(wh):
    wh.replace_table("curated.things", pl.DataFrame({"a": [7]}))
    batches = iter([pl.DataFrame({"a": [1]}), pl.DataFrame({"zz": [2]})])
    with pytest.raises(WarehouseError, match="curated.things"):
        wh.replace_table_batches("curated.things", batches)
    assert wh.read_table("curated.things")["a"].to_list() == [7]
    assert _tables(wh) == ["curated.things"]


def test_no_batch_at_all_is_an_error_and_changes_nothing(wh):
    wh.replace_table("curated.things", pl.DataFrame({"a": [7]}))
    with pytest.raises(WarehouseError, match="no batch"):
        wh.replace_table_batches("curated.things", iter([]))
    assert wh.read_table("curated.things")["a"].to_list() == [7]


def _prices(ticker: str, first: date, n: int) -> pl.DataFrame:
    days = [first + timedelta(days=i) for i in range(n)]
    return conform(
        pl.DataFrame(
            {
                "ticker": [ticker] * n,
                "date": days,
                "close": [10.0 + i for i in range(n)],
                "source": ["demo"] * n,
                "ingested_at": [T0] * n,
            }
        ),
        RAW_PRICES,
    )


def test_raw_rows_are_read_from_each_tickers_own_start(wh):
    wh.write_raw(
        "prices",
        pl.concat([_prices("A", date(2024, 1, 1), 10), _prices("B", date(2024, 1, 1), 10)]),
    )
    wh.write_raw("prices", _prices("C", date(2024, 1, 1), 3))
    starts = pl.DataFrame(
        {"ticker": ["A", "B", "B"], "since": [date(2024, 1, 1), date(2024, 1, 8), date(2024, 1, 9)]}
    )
    got = wh.read_raw_from("prices", "demo", starts).sort("ticker", "date")
    # A whole, B from its earliest start (the 8th: 3 rows), C not asked for
    assert got.group_by("ticker").len().sort("ticker").rows() == [("A", 10), ("B", 3)]
    assert got.filter(pl.col("ticker") == "B")["date"].min() == date(2024, 1, 8)
    assert got.schema == pl.Schema(RAW_PRICES)
    assert wh.read_raw_from("prices", "yahoo", starts).is_empty()
    assert wh.read_raw_from("prices", "demo", starts.clear()).schema == pl.Schema(RAW_PRICES)


def test_rows_per_ticker_and_a_ticker_subset_of_a_raw_table(wh):
    assert wh.ticker_rows("prices", "demo").is_empty()  # no warehouse yet
    wh.write_raw(
        "prices", pl.concat([_prices("B", date(2024, 1, 1), 4), _prices("A", date(2024, 1, 1), 2)])
    )
    assert wh.ticker_rows("prices", "demo").rows() == [("A", 2), ("B", 4)]
    assert wh.ticker_rows("prices", "yahoo").is_empty()
    assert wh.read_raw("prices", "demo", tickers=["B"])["ticker"].unique().to_list() == ["B"]
    assert wh.read_raw("prices", "demo", tickers=[]).is_empty()

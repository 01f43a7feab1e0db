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


def _prices_like() -> pl.DataFrame:
    rows = {"B": 3, "A": 2, "C": 4, "D": 1}  # inserted out of ticker order
    return pl.DataFrame(
        {
            "ticker": [t for t, n in rows.items() for _ in range(n)],
            "date": [date(2024, 1, 1) + timedelta(days=i) for n in rows.values() for i in range(n)],
            "close": [float(i) for i in range(sum(rows.values()))],
        }
    )


def test_read_batches_give_whole_tickers_in_ticker_order_within_the_row_bound(wh):
    frame = _prices_like()
    wh.replace_table("curated.things", frame)
    with wh.read_batches("curated.things", ["ticker", "close"], max_rows=5) as frames:
        batches = list(frames)
    # in ticker order A(2) + B(3) = 5 rows, then C(4) + D(1) = 5; rows as stored in a batch
    assert [sorted(b["ticker"].unique()) for b in batches] == [
        ["A", "B"],
        ["C", "D"],
    ]
    assert all(b.columns == ["ticker", "close"] for b in batches)
    assert_frame_equal(
        pl.concat(batches).sort("ticker", "close"),
        frame.select("ticker", "close").sort("ticker", "close"),
    )
    with wh.read_batches("curated.things", max_rows=1) as frames:  # a ticker is never split
        assert [b.height for b in frames] == [2, 3, 4, 1]


def test_read_batches_of_an_empty_table_give_one_empty_frame_and_null_keys_come_last(wh):
    wh.replace_table("curated.things", _prices_like().clear())
    with wh.read_batches("curated.things", ["ticker", "close"]) as frames:
        (only,) = list(frames)
    assert only.is_empty() and only.columns == ["ticker", "close"]
    with_null = pl.concat(
        [
            _prices_like(),
            pl.DataFrame({"ticker": [None], "date": [date(2024, 2, 1)], "close": [9.0]}),
        ]
    )
    wh.replace_table("curated.things", with_null)
    with wh.read_batches("curated.things", max_rows=100) as frames:
        batches = list(frames)
    assert [b.height for b in batches] == [10, 1] and batches[1]["ticker"].to_list() == [None]


def test_read_batches_of_a_missing_table_name_it(wh):
    wh.replace_table("curated.things", _prices_like())
    with pytest.raises(WarehouseError, match="curated.nothing"):
        with wh.read_batches("curated.nothing"):
            pass


def test_distinct_dates_are_the_tables_calendar_in_order(wh):
    assert wh.distinct_dates("curated.things").is_empty()  # no table yet
    frame = pl.concat(
        [_prices_like(), pl.DataFrame({"ticker": ["Z"], "date": [None], "close": [1.0]})],
        how="vertical_relaxed",
    )
    wh.replace_table("curated.things", frame)
    expected = frame["date"].drop_nulls().unique().sort()
    assert wh.distinct_dates("curated.things")["date"].to_list() == expected.to_list()
    assert wh.distinct_dates("curated.things")["date"].to_list()[:2] == [
        date(2024, 1, 1),
        date(2024, 1, 2),
    ]

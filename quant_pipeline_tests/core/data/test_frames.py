from datetime import date

import polars as pl
import pytest

from quant_pipeline.core.data.frames import is_sorted_by, missing_columns, require_columns

D1, D2, D3 = date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4)


@pytest.mark.parametrize(
    ("tickers", "dates", "expected"),
    [
        (["A", "A", "B"], [D1, D2, D1], True),  # strictly increasing (ticker, date)
        (["A", "A", "B"], [D2, D1, D1], False),  # dates go back within A
        (["B", "A", "A"], [D1, D1, D2], False),  # tickers go back
        (["A", "A", "B"], [D1, D1, D1], False),  # repeated key: not strictly increasing
        (["A", "B", "C"], [D3, D2, D1], True),  # dates may fall when the ticker changes
        ([None, "A", "B"], [D1, D1, D1], False),  # a null ticker is never proof of order
        (["A", "A", "B"], [D1, None, D1], False),  # a null date inside a ticker decides nothing
        (["A"], [D1], True),
    ],
)
def test_is_sorted_by_accepts_only_strictly_increasing_keys(tickers, dates, expected):
    frame = pl.DataFrame(
        {"ticker": tickers, "date": dates}, schema={"ticker": pl.String, "date": pl.Date}
    )
    assert is_sorted_by(frame, ["ticker", "date"]) is expected


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        ((["B", "B"], [D1, D2]), True),  # the next chunk goes on in order
        ((["A", "B"], [D2, D1]), False),  # the next chunk repeats A's last key
        ((["A", "B"], [D3, D1]), True),  # A continues into the next chunk, later
        ((["A", "B"], [D1, D2]), False),  # A continues into the next chunk, earlier
    ],
)
def test_is_sorted_by_compares_rows_across_chunk_boundaries(second, expected):
    """A table read from DuckDB arrives in many chunks: the row after a boundary is compared
    with the row before it."""
    schema = {"ticker": pl.String, "date": pl.Date}
    first = pl.DataFrame({"ticker": ["A", "A"], "date": [D1, D2]}, schema=schema)
    nxt = pl.DataFrame({"ticker": second[0], "date": second[1]}, schema=schema)
    frame = pl.concat([first, nxt], rechunk=False)
    assert frame.n_chunks() == 2
    assert is_sorted_by(frame, ["ticker", "date"]) is expected


def test_is_sorted_by_with_one_key_column_rejects_repeats():
    assert is_sorted_by(pl.DataFrame({"k": ["a", "b", "c"]}), ["k"])
    assert not is_sorted_by(pl.DataFrame({"k": ["a", "b", "b"]}), ["k"])


def test_is_sorted_by_an_empty_frame_is_true():
    assert is_sorted_by(pl.DataFrame(schema={"k": pl.String}), ["k"])


def test_missing_columns_lists_the_absent_names_in_the_order_asked():
    frame = pl.DataFrame({"date": [1], "close": [2.0]})
    assert missing_columns(frame, ["ticker", "close", "adj_close"]) == ["ticker", "adj_close"]
    assert missing_columns(frame.lazy(), ["date"]) == []


class _MyError(ValueError):
    pass


def test_require_columns_names_the_frame_the_missing_columns_and_what_it_has():
    frame = pl.DataFrame({"date": [1], "close": [2.0]})
    require_columns(frame, ["date", "close"], "prices")  # complete: no error
    with pytest.raises(
        _MyError,
        match=r"^curated\.prices: missing column\(s\) \['adj_close'\]; it has \['date', 'close'\]$",
    ):
        require_columns(frame, ("date", "adj_close"), "curated.prices", _MyError)
    with pytest.raises(ValueError, match="daily must be a polars DataFrame, got dict"):
        require_columns({"date": [1]}, ["date"], "daily")

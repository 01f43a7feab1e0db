from datetime import date

import polars as pl
import pytest

from quant_pipeline.core.data.frames import is_sorted_by

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


def test_is_sorted_by_with_one_key_column_rejects_repeats():
    assert is_sorted_by(pl.DataFrame({"k": ["a", "b", "c"]}), ["k"])
    assert not is_sorted_by(pl.DataFrame({"k": ["a", "b", "b"]}), ["k"])


def test_is_sorted_by_an_empty_frame_is_true():
    assert is_sorted_by(pl.DataFrame(schema={"k": pl.String}), ["k"])

"""validate() skips pandera's hashing uniqueness check only when key order proves uniqueness."""

from datetime import date

import polars as pl
import pytest

from quant_pipeline.core.data.validation import CuratedValidationError, validate


def prices(tickers: list[str], dates: list[date]) -> pl.DataFrame:
    n = len(tickers)
    return pl.DataFrame(
        {
            "ticker": tickers,
            "date": dates,
            **{c: [10.0] * n for c in ("open", "high", "low", "close", "adj_close", "volume")},
            "daily_return": [None] * n,
        },
        schema_overrides={"daily_return": pl.Float64},
    )


def test_a_duplicate_key_in_sorted_order_is_still_reported():
    frame = prices(["A", "A", "B"], [date(2024, 1, 2), date(2024, 1, 2), date(2024, 1, 2)])
    with pytest.raises(CuratedValidationError, match="multiple_fields_uniqueness"):
        validate(frame, "curated.prices")


def test_a_key_sorted_frame_with_a_bad_row_reports_the_row_check():
    frame = prices(["A", "B"], [date(2024, 1, 2), date(2024, 1, 2)]).with_columns(
        close=pl.Series([10.0, -1.0])
    )
    with pytest.raises(CuratedValidationError, match="column 'close' check 'greater_than\\(0\\)'"):
        validate(frame, "curated.prices")

from datetime import UTC, date, datetime

import polars as pl
import pytest

from quant_pipeline.core.data.curation import curate_fundamentals, curate_prices, curate_securities
from quant_pipeline.core.data.schema import RAW_FUNDAMENTALS, RAW_PRICES, RAW_SECURITIES, conform
from quant_pipeline.core.data.validation import CuratedValidationError, validate

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def prices(**overrides: list) -> pl.DataFrame:
    base = {
        "ticker": ["A", "A", "B"],
        "date": [date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 2)],
        "open": [None, 10.0, 5.0],
        "high": [None, 11.0, 6.0],
        "low": [None, 9.0, 4.0],
        "close": [10.0, 10.5, 5.0],
        "adj_close": [10.0, 10.5, 5.0],
        "volume": [100.0, 200.0, 300.0],
        "daily_return": [None, 0.05, None],
    }
    return pl.DataFrame(base | overrides, schema_overrides={"open": pl.Float64})


def test_valid_prices_pass_unchanged():
    frame = prices()
    assert validate(frame, "curated.prices") is not None
    assert validate(frame, "curated.prices").equals(frame)


def test_error_names_table_column_check_and_example_rows():
    frame = prices(close=[10.0, -1.0, 5.0], high=[None, 8.0, 6.0])
    with pytest.raises(CuratedValidationError) as info:
        validate(frame, "curated.prices")
    message = str(info.value)
    assert message.startswith("curated.prices failed validation")
    assert "column 'close' check 'greater_than(0)' failed on 1 rows" in message
    assert "ticker=A, date=2024-01-03, close=-1.0" in message
    # high 8 < low 9 on the same row: a table-level rule, shown with the whole row
    assert "'high >= low where both are present' failed on 1 rows" in message
    assert "ticker=A, date=2024-01-03, open=10.0, high=8.0, low=9.0" in message


def test_duplicate_keys_wrong_dtypes_and_nulls_are_all_reported_together():
    frame = prices(date=[date(2024, 1, 2)] * 3, ticker=["A", "A", None]).with_columns(
        pl.col("volume").cast(pl.Int64)
    )
    with pytest.raises(CuratedValidationError) as info:
        validate(frame, "curated.prices")
    message = str(info.value)
    assert "multiple_fields_uniqueness" in message
    assert "column 'volume' check \"dtype('Float64')\" failed: Int64" in message
    assert "column 'ticker' check 'not_nullable'" in message


def test_at_most_five_example_rows_are_shown():
    n = 8
    frame = pl.DataFrame(
        {
            "ticker": [f"T{i}" for i in range(n)],
            "date": [date(2024, 1, 2)] * n,
            "open": [None] * n,
            "high": [None] * n,
            "low": [None] * n,
            "close": [-1.0] * n,
            "adj_close": [1.0] * n,
            "volume": [None] * n,
            "daily_return": [None] * n,
        },
        schema_overrides={c: pl.Float64 for c in ("open", "high", "low", "volume", "daily_return")},
    )
    with pytest.raises(CuratedValidationError) as info:
        validate(frame, "curated.prices")
    message = str(info.value)
    assert "failed on 8 rows" in message
    assert "ticker=T4," in message and "ticker=T5," not in message


def test_fundamentals_available_before_period_end_fail():
    raw = conform(
        pl.DataFrame(
            {
                "ticker": ["A"],
                "period_end": [date(2023, 3, 31)],
                "period_type": ["Q"],
                "item": ["revenue"],
                "value": [1.0],
                "report_date": [date(2023, 3, 1)],  # before the quarter ended: impossible
                "source": ["demo"],
                "ingested_at": [T0],
            }
        ),
        RAW_FUNDAMENTALS,
    )
    frame = curate_fundamentals(raw)
    with pytest.raises(CuratedValidationError, match="available_at >= period_end"):
        validate(frame, "curated.fundamentals")
    fixed = curate_fundamentals(raw.with_columns(report_date=pl.lit(date(2023, 5, 1))))
    assert validate(fixed, "curated.fundamentals").height == 1


def test_curated_prices_from_curate_prices_pass_validation():
    raw = conform(
        pl.DataFrame(
            {
                "ticker": ["A", "A"],
                "date": [date(2024, 1, 2), date(2024, 1, 3)],
                "close": [10.0, 11.0],
                "source": ["demo"] * 2,
                "ingested_at": [T0] * 2,
            }
        ),
        RAW_PRICES,
    )
    assert validate(curate_prices(raw).prices, "curated.prices").height == 2


def test_membership_end_before_start_fails_and_unknown_table_raises():
    frame = pl.DataFrame(
        {
            "universe": ["sp500"],
            "ticker": ["A"],
            "start_date": [date(2020, 1, 1)],
            "end_date": [date(2019, 1, 1)],
        }
    )
    with pytest.raises(CuratedValidationError, match="end_date >= start_date"):
        validate(frame, "curated.membership")
    with pytest.raises(KeyError, match="curated.nope"):
        validate(frame, "curated.nope")


def test_latest_profiles_pass_and_a_repeated_ticker_fails():
    raw = conform(
        pl.DataFrame(
            {"ticker": ["A", "A"], "sector": ["Energy", "Utilities"], "source": ["demo"] * 2}
        ).with_columns(ingested_at=pl.Series([T0, T0.replace(month=2)])),
        RAW_SECURITIES,
    )
    assert validate(curate_securities(raw), "curated.securities")["sector"].item() == "Utilities"
    with pytest.raises(CuratedValidationError, match="column 'ticker' check 'field_uniqueness'"):
        validate(raw.drop("ingested_at").with_columns(raw["ingested_at"]), "curated.securities")

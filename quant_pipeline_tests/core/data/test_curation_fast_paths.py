"""The fast paths of curate (sorted input, source adj_close) give what the general path gives."""

from datetime import UTC, date, datetime

import polars as pl
from polars.testing import assert_frame_equal

from quant_pipeline.core.data.curation import curate_prices, latest_rows
from quant_pipeline.core.data.schema import RAW_PRICES, conform

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = datetime(2024, 2, 1, tzinfo=UTC)
D1, D2, D3 = date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4)


def raw(rows: list[tuple]) -> pl.DataFrame:
    frame = pl.DataFrame(
        rows, schema=["ticker", "date", "close", "adj_close", "ingested_at"], orient="row"
    ).with_columns(
        open=pl.col("close"),
        high=pl.col("close"),
        low=pl.col("close"),
        volume=pl.lit(100.0),
        source=pl.lit("demo"),
    )
    return conform(frame, RAW_PRICES)


def test_latest_rows_of_a_key_sorted_frame_is_the_frame_itself():
    frame = raw([("A", D1, 10.0, 5.0, T0), ("A", D2, 11.0, 5.5, T0), ("B", D1, 20.0, 20.0, T0)])
    assert latest_rows(frame, ["ticker", "date"]) is frame


def test_latest_rows_of_a_shuffled_frame_keeps_the_latest_vintage_in_key_order():
    frame = raw(
        [
            ("B", D1, 20.0, 20.0, T0),
            ("A", D2, 11.0, 5.5, T1),  # correction of A D2
            ("A", D1, 10.0, 5.0, T0),
            ("A", D2, 99.0, 9.9, T0),
            ("A", D2, 12.0, 6.0, T1),  # same ingested_at as the correction, later row: wins
        ]
    )
    out = latest_rows(frame, ["ticker", "date"])
    assert out.select("ticker", "date", "close").rows() == [
        ("A", D1, 10.0),
        ("A", D2, 12.0),
        ("B", D1, 20.0),
    ]


def test_curate_prices_adjusts_only_tickers_lacking_adj_close_and_returns_restart_per_ticker():
    # A has adj_close from the source (halved: a 2:1 split later); B has none and a 2:1 split
    # on D3, so B's computed adj_close before D3 is close / 2: 40/2 = 20, 42/2 = 21, then 22.
    frame = raw(
        [
            ("A", D1, 10.0, 5.0, T0),
            ("A", D2, 11.0, 5.5, T0),
            ("B", D1, 40.0, None, T0),
            ("B", D2, 42.0, None, T0),
            ("B", D3, 22.0, None, T0),
        ]
    )
    actions = pl.DataFrame(
        {"ticker": ["A", "B"], "date": [D3, D3], "action": ["split", "split"], "value": [2.0, 2.0]}
    )
    out = curate_prices(frame, actions).prices
    assert out["adj_close"].to_list() == [5.0, 5.5, 20.0, 21.0, 22.0]
    # A: 5.5/5 - 1 = 0.1; B: 21/20 - 1 = 0.05, 22/21 - 1; first row of each ticker is null
    expected = [None, 0.1, None, 0.05, 22.0 / 21.0 - 1.0]
    assert_frame_equal(
        out.select("daily_return"),
        pl.DataFrame({"daily_return": expected}, schema={"daily_return": pl.Float64}),
    )

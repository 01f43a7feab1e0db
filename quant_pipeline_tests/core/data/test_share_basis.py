"""Golden tests of the share basis on tiny hand-computed markets.

Ticker S splits 4:1 on Thursday 2024-01-04. Its close is 100, 104 and then 26.5, 27 (as traded:
26.5 x 4 = 106, no real move beyond +1.9%). Shares: 1,000 reported for 2023-12-31 (pre-split),
4,100 for 2024-03-31 (post-split, grown 2.5%). Revenue 500 -> 520 and total assets 2,000 ->
2,050: per share they fall to ~1/4.
"""

from datetime import date

import polars as pl
import pytest
from polars.testing import assert_frame_equal, assert_series_equal

from quant_pipeline.core.backtest.benchmark_returns import cap_weighted_benchmark
from quant_pipeline.core.data.share_basis import (
    AS_TRADED,
    METHOD_CORPORATE_ACTION,
    METHOD_INFERRED,
    SHARE_BASIS_EVENTS_SCHEMA,
    SPLIT_ADJUSTED,
    corporate_action_splits,
    inferred_splits,
    share_basis_events,
    share_multiplier,
    split_index,
)

DAYS = [date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4), date(2024, 1, 5)]
SPLIT_DAY = date(2024, 1, 4)
AS_TRADED_CLOSE = [100.0, 104.0, 26.5, 27.0]
ADJUSTED_CLOSE = [25.0, 26.0, 26.5, 27.0]  # the same history restated on today's basis


def prices(closes: list[float], ticker: str = "S") -> pl.DataFrame:
    return pl.DataFrame({"ticker": ticker, "date": DAYS, "close": closes})


def fundamentals(
    shares: list[float],
    revenue: list[float] | None = None,
    assets: list[float] | None = None,
    period_ends: list[date] | None = None,
    ticker: str = "S",
) -> pl.DataFrame:
    ends = period_ends or [date(2023, 12, 31), date(2024, 3, 31)]
    n = len(ends)
    return pl.DataFrame(
        {
            "ticker": ticker,
            "period_end": ends,
            "period_type": "Q",
            "available_at": [e.replace(day=1) for e in ends],
            "shares_outstanding": shares,
            "revenue": revenue or [500.0 + 20.0 * k for k in range(n)],
            "total_assets": assets or [2000.0 + 50.0 * k for k in range(n)],
        },
        schema_overrides={"revenue": pl.Float64, "total_assets": pl.Float64},
    )


def split_action(value: float = 4.0, action: str = "split") -> pl.DataFrame:
    return pl.DataFrame({"ticker": ["S"], "date": [SPLIT_DAY], "action": [action], "value": value})


def test_a_split_on_file_over_as_traded_prices_is_an_as_traded_event():
    events = corporate_action_splits(
        split_action(), prices(AS_TRADED_CLOSE), fundamentals([1000.0, 4100.0])
    )
    assert events.schema == pl.Schema(SHARE_BASIS_EVENTS_SCHEMA)
    row = events.row(0, named=True)
    # close on the split's row / the row before = 26.5 / 104 = 0.2548; x4 = 1.019: as traded
    assert row["date"] == SPLIT_DAY and row["ratio"] == 4.0
    assert row["method"] == METHOD_CORPORATE_ACTION and row["price_basis"] == AS_TRADED
    assert row["period_before"] == date(2023, 12, 31) and row["period_after"] == date(2024, 3, 31)
    assert "x4.1" in row["evidence"] and "x0.2548" in row["evidence"]


def test_a_split_on_file_over_split_adjusted_prices_is_a_split_adjusted_event():
    events = corporate_action_splits(
        split_action(), prices(ADJUSTED_CLOSE), fundamentals([1000.0, 4100.0])
    )
    # 26.5 / 26 = 1.019; x4 = 4.08: no fall at the split, the prices are restated
    assert events["price_basis"].to_list() == [SPLIT_ADJUSTED]


def test_a_stock_dividend_of_one_share_per_share_is_a_ratio_two_event_and_dividends_are_none():
    actions = pl.concat(
        [split_action(1.0, "stock_dividend"), split_action(0.5, "dividend")], how="vertical"
    )
    events = corporate_action_splits(
        actions, prices([100.0, 104.0, 52.0, 53.0]), fundamentals([1000.0, 2000.0])
    )
    assert events.select("ratio", "price_basis").rows() == [(2.0, AS_TRADED)]


def test_a_near_integer_share_jump_with_per_share_items_falling_inversely_is_inferred():
    events = inferred_splits(fundamentals([1000.0, 4100.0]), prices(AS_TRADED_CLOSE))
    row = events.row(0, named=True)
    # 4100 / 1000 = 4.1, within 12% of 4; revenue/share 520/500 / 4.1 = 0.2537 (x4 = 1.01)
    assert row["ratio"] == 4.0 and row["method"] == METHOD_INFERRED
    # the as-traded close falls to 1/4 on 2024-01-04: that day is the split, prices as traded
    assert row["date"] == SPLIT_DAY and row["price_basis"] == AS_TRADED
    assert "revenue/share x0.2537" in row["evidence"]


def test_an_inferred_split_over_split_adjusted_prices_has_no_date():
    events = inferred_splits(fundamentals([1000.0, 4100.0]), prices(ADJUSTED_CLOSE))
    assert events.select("date", "price_basis", "ratio").rows() == [(None, SPLIT_ADJUSTED, 4.0)]


def test_a_reverse_split_is_inferred_with_ratio_one_over_k():
    f = fundamentals([3000.0, 1010.0], revenue=[600.0, 610.0], assets=[3000.0, 3030.0])
    events = inferred_splits(f, prices(ADJUSTED_CLOSE))
    assert events["ratio"].to_list() == [pytest.approx(1 / 3)]


@pytest.mark.parametrize(
    ("shares", "revenue", "why"),
    [
        ([1000.0, 3500.0], [500.0, 520.0], "x3.5 is over 12% from 3 and from 4"),
        ([1000.0, 2000.0], [500.0, 1000.0], "a merger: revenue doubled with the shares"),
        ([1000.0, 1300.0], [500.0, 520.0], "x1.3 is no split"),
    ],
)
def test_jumps_that_are_not_splits_are_not_inferred(shares, revenue, why):
    f = fundamentals(shares, revenue=revenue, assets=[2000.0, 2000.0 * revenue[1] / revenue[0]])
    assert inferred_splits(f, prices(ADJUSTED_CLOSE)).is_empty(), why


def test_a_blip_that_the_next_report_undoes_is_not_a_split():
    ends = [date(2023, 9, 30), date(2023, 12, 31), date(2024, 3, 31)]
    f = fundamentals(
        [1000.0, 4000.0, 1000.0], period_ends=ends, revenue=[500.0] * 3, assets=[2000.0] * 3
    )
    assert inferred_splits(f, prices(ADJUSTED_CLOSE)).is_empty()


def test_a_split_on_file_is_not_inferred_again():
    f = fundamentals([1000.0, 4100.0])
    events = share_basis_events(split_action(), prices(AS_TRADED_CLOSE), f)
    assert events["method"].to_list() == [METHOD_CORPORATE_ACTION]


def test_the_multiplier_applies_an_as_traded_split_from_its_date_and_an_adjusted_one_always():
    events = pl.DataFrame(
        {
            "ticker": ["S", "S", "T"],
            "date": [SPLIT_DAY, date(2024, 6, 3), None],
            "period_before": [date(2023, 12, 31), date(2024, 3, 31), date(2023, 12, 31)],
            "period_after": [date(2024, 3, 31), date(2024, 6, 30), date(2024, 3, 31)],
            "ratio": [4.0, 2.0, 3.0],
            "method": METHOD_INFERRED,
            "price_basis": [AS_TRADED, AS_TRADED, SPLIT_ADJUSTED],
            "evidence": "",
        },
        schema=SHARE_BASIS_EVENTS_SCHEMA,
    )
    rows = pl.DataFrame(
        {
            "ticker": ["S", "S", "S", "S", "S", "T", "T", "U"],
            "period": [
                date(2023, 12, 31),  # price before the first split: 1
                date(2023, 12, 31),  # price on the split day: 4
                date(2023, 12, 31),  # price after both splits: 4 x 2 = 8
                date(2024, 3, 31),  # reported after the first split, priced after the second: 2
                None,  # a profile count: as is
                date(2023, 12, 31),  # split-adjusted prices, priced before the split: 3
                date(2024, 3, 31),  # after the split: 1
                date(2023, 12, 31),  # no event: 1
            ],
            "price_date": [
                date(2024, 1, 3),
                SPLIT_DAY,
                date(2024, 7, 1),
                date(2024, 7, 1),
                date(2024, 7, 1),
                date(2023, 11, 1),
                date(2024, 7, 1),
                date(2024, 7, 1),
            ],
        }
    )
    out = share_multiplier(rows, events, period="period", price_date="price_date")
    assert_series_equal(
        out, pl.Series("share_multiplier", [1.0, 4.0, 8.0, 2.0, 1.0, 3.0, 1.0, 1.0])
    )


def test_the_cap_weighted_benchmark_weights_a_split_ticker_by_its_true_cap():
    # S (split-adjusted prices 25, 26, 26.5, 27; 1,000 pre-split shares, 4:1 split after the
    # report) and B (close 10 throughout then +10%; 10,000 shares). True caps on 2024-01-02:
    # S 25 x 4,000 = 100,000, B 100,000: equal weights. Unrebased S would weigh 25,000.
    px = pl.concat([prices(ADJUSTED_CLOSE), prices([10.0, 10.0, 10.0, 11.0], "B")]).with_columns(
        daily_return=pl.col("close").pct_change().over("ticker")
    )
    shares = pl.DataFrame(
        {
            "ticker": ["S", "B"],
            "available_at": [date(2023, 12, 1)] * 2,
            "shares_outstanding": [1000.0, 10000.0],
            "period_end": [date(2023, 11, 30)] * 2,
        }
    )
    events = inferred_splits(
        fundamentals([1000.0, 4100.0], period_ends=[date(2023, 11, 30), date(2024, 3, 31)]),
        prices(ADJUSTED_CLOSE),
    )
    out = cap_weighted_benchmark(px, shares, share_basis=events)
    # 2024-01-03: S +4% (26/25), B 0%, weights 100,000 : 100,000 -> 2.0%
    # 2024-01-05: S 27/26.5-1 = 1.8868%, B +10%; caps 26.5 x 4,000 = 106,000 and 100,000
    s5 = 27.0 / 26.5 - 1.0
    expected = pl.DataFrame(
        {
            "date": DAYS[1:],
            "benchmark_return": [
                0.02,
                (26.5 / 26.0 - 1.0) * 104_000 / 204_000,
                (s5 * 106_000 + 0.1 * 100_000) / 206_000,
            ],
        }
    )
    assert_frame_equal(out, expected)
    unrebased = cap_weighted_benchmark(px, shares)
    assert unrebased["benchmark_return"][0] == pytest.approx(0.04 * 25_000 / 125_000)


def test_the_split_index_counts_as_traded_splits_up_to_each_day_only():
    events = corporate_action_splits(
        split_action(), prices(AS_TRADED_CLOSE), fundamentals([1000.0, 4100.0])
    )
    rows = pl.concat([prices(AS_TRADED_CLOSE), prices([1.0] * 4, "B")])
    assert split_index(rows, events).to_list() == [1.0, 1.0, 4.0, 4.0, 1.0, 1.0, 1.0, 1.0]
    adjusted = events.with_columns(price_basis=pl.lit(SPLIT_ADJUSTED))
    assert split_index(rows, adjusted).to_list() == [1.0] * 8
    assert split_index(rows, None).to_list() == [1.0] * 8


def test_the_share_basis_label_counts_events_by_method_and_price_basis():
    from quant_pipeline.core.backtest.bias_labels import share_basis_label

    on_file = corporate_action_splits(
        split_action(), prices(AS_TRADED_CLOSE), fundamentals([1000.0, 4100.0])
    )
    inferred = inferred_splits(
        fundamentals([1000.0, 4100.0], ticker="T"), prices(ADJUSTED_CLOSE, "T")
    )
    label = share_basis_label(pl.concat([on_file, inferred]))
    assert label == (
        "rebased: 2 splits of 2 tickers put share counts on the prices' basis: "
        "1 corporate_action (as_traded), 1 inferred (split_adjusted); "
        "see curated.share_basis_events"
    )
    assert share_basis_label(on_file.head(0)).startswith("none: no split found")

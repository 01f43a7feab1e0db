from datetime import date

import polars as pl
import pytest

from quant_pipeline.core.data.calendar import (
    CalendarError,
    previous_trading_day,
    rebalance_dates,
    trading_days,
)

# Jan 1 and Apr 1 2021 are missing (holiday / no data): the first trading day is the next one.
DAYS = pl.Series(
    "date",
    [
        date(2020, 12, 30),
        date(2020, 12, 31),
        date(2021, 1, 4),
        date(2021, 1, 5),
        date(2021, 2, 1),
        date(2021, 3, 31),
        date(2021, 4, 5),
        date(2021, 7, 1),
        date(2022, 1, 3),
    ],
)


def test_trading_days_are_sorted_unique_dates_of_prices():
    prices = pl.DataFrame(
        {"ticker": ["A", "B", "A"], "date": [date(2021, 1, 5), date(2021, 1, 4), date(2021, 1, 4)]}
    )
    assert trading_days(prices).to_list() == [date(2021, 1, 4), date(2021, 1, 5)]


def test_monthly_dates_are_first_trading_day_of_each_month_including_first_partial_month():
    assert rebalance_dates(DAYS, "monthly") == [
        date(2020, 12, 30),
        date(2021, 1, 4),
        date(2021, 2, 1),
        date(2021, 3, 31),
        date(2021, 4, 5),
        date(2021, 7, 1),
        date(2022, 1, 3),
    ]


def test_quarterly_and_annual_dates_use_first_trading_day_of_the_period():
    assert rebalance_dates(DAYS, "quarterly") == [
        date(2020, 12, 30),
        date(2021, 1, 4),
        date(2021, 4, 5),
        date(2021, 7, 1),
        date(2022, 1, 3),
    ]
    assert rebalance_dates(DAYS, "annual") == [
        date(2020, 12, 30),
        date(2021, 1, 4),
        date(2022, 1, 3),
    ]


def test_start_in_mid_period_filters_dates_without_creating_a_mid_month_date():
    got = rebalance_dates(DAYS, "monthly", start=date(2021, 1, 5), end=date(2021, 4, 5))
    assert got == [date(2021, 2, 1), date(2021, 3, 31), date(2021, 4, 5)]


def test_unknown_frequency_is_rejected_with_allowed_values():
    with pytest.raises(CalendarError, match="weekly.*monthly"):
        rebalance_dates(DAYS, "weekly")


def test_previous_trading_day_is_strictly_before():
    assert previous_trading_day(DAYS, date(2021, 1, 4)) == date(2020, 12, 31)
    assert previous_trading_day(DAYS, date(2021, 1, 3)) == date(2020, 12, 31)
    assert previous_trading_day(DAYS, date(2020, 12, 30)) is None

"""Vintage-aware fundamentals: a rebalance on D sees the version of each period known at D.

Ticker A, annual period P15 (FY 2015, reported 2016-02-15) is first ingested at V1 = 2016-02-16
10:00 UTC with net_income 12, revenue 120, total_equity 100; a restatement ingested at
V2 = 2016-06-15 changes net_income to 6 only. FY 2014 (P14, reported 2015-02-15: net_income 8)
was loaded in the same first ingestion V1, i.e. after the fact for a 2015 rebalance.
"""

from datetime import UTC, date, datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quant_pipeline.core.data.curation import (
    fundamentals_known_at,
    fundamentals_vintages,
    known_cutoff,
)
from quant_pipeline.core.data.schema import RAW_FUNDAMENTALS, conform
from quant_pipeline.core.factors.point_in_time import (
    point_in_time_factor_values,
    vintage_groups,
    vintage_report,
)
from quant_pipeline.core.factors.values import factor_values

V1 = datetime(2016, 2, 16, 10, 0, tzinfo=UTC)
V2 = datetime(2016, 6, 15, 9, 0, tzinfo=UTC)
P14, P15 = date(2014, 12, 31), date(2015, 12, 31)
D0, D1, D2 = date(2015, 6, 1), date(2016, 4, 1), date(2016, 7, 1)


def raw_rows(rows: list[tuple]) -> pl.DataFrame:
    """rows: (ticker, period_end, period_type, item, value, report_date, ingested_at)."""
    frame = pl.DataFrame(
        rows,
        schema=[
            "ticker",
            "period_end",
            "period_type",
            "item",
            "value",
            "report_date",
            "ingested_at",
        ],
        orient="row",
    ).with_columns(source=pl.lit("test"))
    return conform(frame, RAW_FUNDAMENTALS)


RAW = raw_rows(
    [
        ("A", P14, "A", "net_income", 8.0, date(2015, 2, 15), V1),
        ("A", P14, "A", "total_equity", 100.0, date(2015, 2, 15), V1),
        ("A", P15, "A", "net_income", 12.0, date(2016, 2, 15), V1),
        ("A", P15, "A", "revenue", 120.0, date(2016, 2, 15), V1),
        ("A", P15, "A", "total_equity", 100.0, date(2016, 2, 15), V1),
        ("A", P15, "A", "net_income", 6.0, date(2016, 2, 15), V2),  # the restatement
    ]
)


def test_every_ingestion_of_a_period_is_one_version_carrying_unchanged_items_forward():
    vintages = fundamentals_vintages(RAW)
    got = vintages.select("period_end", "vintage_at", "net_income", "revenue", "total_equity")
    expected = pl.DataFrame(
        {
            "period_end": [P14, P15, P15],
            "vintage_at": [V1, V1, V2],
            "net_income": [8.0, 12.0, 6.0],
            # V2 re-sent net income only: revenue and equity are still the V1 numbers.
            "revenue": [None, 120.0, 120.0],
            "total_equity": [100.0, 100.0, 100.0],
        },
        schema_overrides={"vintage_at": pl.Datetime("us", "UTC")},
    )
    assert_frame_equal(got, expected)
    # Report date known: available on the report date for every version.
    assert vintages["available_at"].to_list() == [
        date(2015, 2, 15),
        date(2016, 2, 15),
        date(2016, 2, 15),
    ]


def test_as_of_view_uses_the_version_known_at_the_date_and_labels_later_loads_first_ingested():
    vintages = fundamentals_vintages(RAW)
    at_d1 = fundamentals_known_at(vintages, D1)
    at_d2 = fundamentals_known_at(vintages, D2)
    # D1 (before the restatement was ingested): the original 12; D2: the restated 6.
    assert at_d1.filter(pl.col("period_end") == P15)["net_income_ttm"].to_list() == [12.0]
    assert at_d2.filter(pl.col("period_end") == P15)["net_income_ttm"].to_list() == [6.0]
    assert set(at_d1["vintage"]) == {"point_in_time"}
    # D0 (2015): nothing had been ingested yet; the first versions stand in, labelled so.
    at_d0 = fundamentals_known_at(vintages, D0, available_before=D0)
    assert at_d0.select("period_end", "net_income", "vintage").rows() == [
        (P14, 8.0, "first_ingested")
    ]


def test_a_version_ingested_during_the_rebalance_day_is_not_known_on_that_day():
    assert known_cutoff(date(2016, 2, 16)) == datetime(2016, 2, 16, tzinfo=UTC)
    vintages = fundamentals_vintages(RAW)
    # V1 came in at 10:00 on 2016-02-16: on that day the view is still "first ingested".
    assert set(fundamentals_known_at(vintages, date(2016, 2, 16))["vintage"]) == {"first_ingested"}
    assert set(fundamentals_known_at(vintages, date(2016, 2, 17))["vintage"]) == {"point_in_time"}


def test_trailing_sums_use_the_versions_known_at_the_date():
    # Four quarters ingested at V1 (revenue 10 each); Q3 restated to 30 at V2.
    quarters = [date(2015, 3, 31), date(2015, 6, 30), date(2015, 9, 30), date(2015, 12, 31)]
    raw = raw_rows(
        [("A", q, "Q", "revenue", 10.0, None, V1) for q in quarters]
        + [("A", quarters[2], "Q", "revenue", 30.0, None, V2)]
    )
    vintages = fundamentals_vintages(raw)
    last = pl.col("period_end") == quarters[-1]
    # 10 + 10 + 10 + 10 before the restatement; 10 + 10 + 30 + 10 after it.
    assert fundamentals_known_at(vintages, D1).filter(last)["revenue_ttm"].to_list() == [40.0]
    assert fundamentals_known_at(vintages, D2).filter(last)["revenue_ttm"].to_list() == [60.0]


def prices() -> pl.DataFrame:
    days = pl.date_range(date(2015, 1, 1), date(2016, 8, 1), "1d", eager=True)
    days = days.filter(days.dt.weekday() <= 5)
    return pl.DataFrame(
        {
            "ticker": "A",
            "date": days,
            "close": 10.0,
            "adj_close": 10.0,
            "volume": 1000.0,
        }
    ).with_columns(daily_return=pl.col("adj_close").pct_change())


SECURITIES = pl.DataFrame({"ticker": ["A"], "sector": ["Energy"]})


def test_a_restatement_ingested_after_d_changes_later_rebalances_only():
    vintages = fundamentals_vintages(RAW)
    values = point_in_time_factor_values(prices(), vintages, SECURITIES, [D0, D1, D2])
    # roe = net_income_ttm / total_equity: D0 uses FY2014 (8/100, first ingested), D1 the
    # original FY2015 (12/100), D2 the restated FY2015 (6/100).
    assert values.select("rebalance_date", "roe").rows() == [
        (D0, pytest.approx(0.08)),
        (D1, pytest.approx(0.12)),
        (D2, pytest.approx(0.06)),
    ]
    # Using only the latest vintage (what curate_fundamentals does) would leak 6/100 into D1.
    from quant_pipeline.core.data.curation import curate_fundamentals

    latest = factor_values(prices(), curate_fundamentals(RAW), SECURITIES, [D1])
    assert latest["roe"].to_list() == [pytest.approx(0.06)]


def test_dates_are_grouped_by_the_set_of_versions_known_and_reported_per_date():
    vintages = fundamentals_vintages(RAW)
    assert vintage_groups(vintages, [D2, D0, D1, date(2015, 9, 1)]) == [
        [D0, date(2015, 9, 1)],
        [D1],
        [D2],
    ]
    report = vintage_report(vintages, [D0, D1, D2])
    expected = pl.DataFrame(
        {
            "rebalance_date": [D0, D1, D2],
            # D0: only FY2014 is available (reported 2015-02-15), ingested later.
            "rows_point_in_time": [0, 2, 2],
            "rows_first_ingested": [1, 0, 0],
            "vintage": ["first_ingested", "point_in_time", "point_in_time"],
        }
    )
    assert_frame_equal(report, expected)

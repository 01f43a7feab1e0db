"""Bias labels: each backtest says how it was made."""

from datetime import date

import polars as pl

from quant_pipeline.core.backtest.bias_labels import LABEL_NAMES, bias_labels, members_per_date

D1, D2 = date(2015, 1, 2), date(2015, 4, 1)
# Members: A and B on both dates; C (left 2015-03-01) on D1 only; D joined on D2.
MEMBERSHIP = pl.DataFrame(
    {
        "universe": "sp500",
        "ticker": ["A", "B", "C", "D"],
        "start_date": [date(2000, 1, 1)] * 3 + [D2],
        "end_date": [None, None, date(2015, 3, 1), None],
    },
    schema_overrides={"end_date": pl.Date},
)
FUNDAMENTALS = pl.DataFrame(
    {
        "period_type": ["A", "A", "Q"],
        "period_end": [date(2013, 12, 31), date(2014, 12, 31), date(2014, 9, 30)],
        "report_date": [None, None, None],
        "available_at": [date(2014, 3, 31), date(2015, 3, 31), date(2014, 11, 14)],
    },
    schema_overrides={"report_date": pl.Date},
)
VINTAGE = pl.DataFrame(
    {
        "rebalance_date": [D1, D2],
        "rows_point_in_time": [0, 0],
        "rows_first_ingested": [2, 3],
        "vintage": ["first_ingested", "first_ingested"],
    }
)


def values(rows):
    return pl.DataFrame(
        rows,
        schema=["rebalance_date", "ticker", "in_universe", "shares_from_profile"],
        orient="row",
    )


def labels(**kw) -> dict[str, str]:
    args = {
        "source": "files",
        "cost_bps": 10.0,
        "delisting_return": None,
        "values": values(
            [
                (D1, "A", True, False),
                (D1, "B", True, False),
                (D2, "A", True, False),
                (D2, "B", True, True),
                (D2, "D", True, False),
            ]
        ),
        "membership": MEMBERSHIP,
        "fundamentals": FUNDAMENTALS,
        "vintage_report": VINTAGE,
        "delisted_tickers": 0,
    }
    args.update(kw)
    frame = bias_labels("s", **args)
    assert frame["label"].to_list() == list(LABEL_NAMES)
    return dict(frame.select("label", "value").iter_rows())


def test_members_are_counted_per_date_with_inclusive_ends():
    got = members_per_date(MEMBERSHIP, [D1, D2, date(2015, 3, 1)])
    assert got.rows() == [(D1, 3), (date(2015, 3, 1), 3), (D2, 3)]


def test_point_in_time_membership_with_a_member_missing_prices_is_not_survivorship_free():
    got = labels()
    assert got["universe"] == "membership:sp500"
    # D1: 2 of 3 members priced (C has no prices), D2: 3 of 3 -> mean (2/3 + 1) / 2 = 0.833.
    assert got["universe_price_coverage"] == "0.833"
    assert got["survivorship_free"].startswith("no: point-in-time membership, but 1 member-dates")
    assert (
        got["fundamentals_timing"] == "assumed_lag: available at period end A +90 days, Q +45 days"
    )
    assert got["data_vintage"] == "first_ingested: 0 row-dates point in time, 5 first-ingested"
    # 1 of 5 rows used today's profile shares.
    assert got["market_cap_shares"].startswith("profile on 20.0% of rows")
    assert got["delisting"].startswith("last_price")
    assert (got["costs_bps"], got["source"]) == ("10", "files")


def test_full_coverage_reported_dates_and_a_delisting_return_read_as_such():
    full = values(
        [
            (D1, "A", True, False),
            (D1, "B", True, False),
            (D1, "C", True, False),
            (D2, "A", True, False),
            (D2, "B", True, False),
            (D2, "D", True, False),
        ]
    )
    reported = FUNDAMENTALS.with_columns(report_date=pl.col("available_at"))
    got = labels(values=full, fundamentals=reported, delisting_return=-0.3)
    assert got["survivorship_free"].startswith("yes: point-in-time membership")
    assert got["universe_price_coverage"] == "1.000"
    assert got["fundamentals_timing"].startswith("report_dates")
    assert got["market_cap_shares"].startswith("reported")
    assert got["delisting"].startswith("delisting_return -0.3")


def test_without_membership_the_label_depends_on_whether_dead_tickers_are_kept():
    assert labels(membership=None, delisted_tickers=3)["survivorship_free"].startswith("yes")
    got = labels(membership=None, delisted_tickers=0)
    assert got["universe"] == "listed" and got["universe_price_coverage"] == "n/a"
    assert got["survivorship_free"].startswith("no: no membership")

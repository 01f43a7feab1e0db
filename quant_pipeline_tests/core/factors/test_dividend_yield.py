"""Golden dividend yield on tiny hand-computed data, from raw rows to factors.values.

Four tickers priced at 50 every weekday of 2019-2020 (so market cap = 50 x shares):

* PAY reports quarterly dividends paid as a cash-flow statement prints them (negative), 100
  shares: 2019Q1..Q4 = -10, -10, -10, -15, 2020Q1 = -20, reported 1 month after each quarter;
* ZERO reports 0 dividends paid every quarter (a company that pays none);
* NONE's statements have no dividends line at all (the S&P folder's case);
* ANN reports once a year: FY2019 dividends 40 on 200 shares, available 90 days after year end.
"""

from datetime import UTC, date, datetime

import polars as pl
import pytest

from quant_pipeline.core.data.curation import curate_fundamentals
from quant_pipeline.core.data.schema import RAW_FUNDAMENTALS, conform
from quant_pipeline.core.factors.values import factor_values

DAYS = pl.date_range(date(2019, 1, 1), date(2020, 12, 31), "1d", eager=True)
DAYS = DAYS.filter(DAYS.dt.weekday() <= 5)
QUARTERS = [date(2019, 3, 31), date(2019, 6, 30), date(2019, 9, 30), date(2019, 12, 31)]
REPORTED = [date(2019, 4, 30), date(2019, 7, 31), date(2019, 10, 31), date(2020, 1, 31)]
Q1_2020, Q1_2020_REPORTED = date(2020, 3, 31), date(2020, 4, 30)


def prices() -> pl.DataFrame:
    frames = [
        pl.DataFrame({"ticker": t, "date": DAYS, "close": 50.0, "volume": 1000.0})
        for t in ("ANN", "NONE", "PAY", "ZERO")
    ]
    return pl.concat(frames).with_columns(adj_close=pl.col("close"), daily_return=pl.lit(0.0))


def raw_fundamentals() -> pl.DataFrame:
    rows = []

    def add(ticker, period_end, period_type, report_date, **items):
        for item, value in items.items():
            rows.append((ticker, period_end, period_type, item, value, report_date))

    for end, reported, paid in zip(
        [*QUARTERS, Q1_2020], [*REPORTED, Q1_2020_REPORTED], [-10, -10, -10, -15, -20], strict=True
    ):
        add("PAY", end, "Q", reported, dividends_paid=float(paid), shares_outstanding=100.0)
        add("ZERO", end, "Q", reported, dividends_paid=0.0, shares_outstanding=100.0)
        add("NONE", end, "Q", reported, net_income=5.0, shares_outstanding=100.0)
    add("ANN", date(2019, 12, 31), "A", None, dividends_paid=40.0, shares_outstanding=200.0)
    frame = pl.DataFrame(
        rows,
        schema=["ticker", "period_end", "period_type", "item", "value", "report_date"],
        orient="row",
    ).with_columns(source=pl.lit("test"), ingested_at=pl.lit(datetime(2019, 1, 1, tzinfo=UTC)))
    return conform(frame, RAW_FUNDAMENTALS)


SECURITIES = pl.DataFrame({"ticker": ["ANN", "NONE", "PAY", "ZERO"], "sector": ["Energy"] * 4})


def yields_on(day: date) -> dict[str, float | None]:
    fundamentals = curate_fundamentals(raw_fundamentals())
    values = factor_values(prices(), fundamentals, SECURITIES, [day])
    return dict(values.select("ticker", "dividend_yield").iter_rows())


def test_curation_keeps_the_amount_paid_and_sums_four_quarters():
    curated = curate_fundamentals(raw_fundamentals()).filter(pl.col("ticker") == "PAY")
    assert curated["dividends_paid"].to_list() == [10.0, 10.0, 10.0, 15.0, 20.0]
    # TTM needs four consecutive quarters: 2019Q4 = 10+10+10+15, 2020Q1 = 10+10+15+20
    assert curated["dividends_paid_ttm"].to_list() == [None, None, None, 45.0, 55.0]


def test_dividend_yield_is_trailing_dividends_over_the_market_cap_before_d():
    # D = 2020-03-02: the latest PAY row available before D is 2019Q4 (reported 2020-01-31):
    # 45 / (50 x 100) = 0.009. ANN's FY2019 becomes available 2019-12-31 + 90 d = 2020-03-30.
    got = yields_on(date(2020, 3, 2))
    assert got["PAY"] == pytest.approx(45 / 5000)
    assert got["ZERO"] == 0.0  # reported paying nothing: a yield of 0
    assert got["NONE"] is None  # no dividends line: unknown, not 0
    assert got["ANN"] is None  # its only row is not available yet


def test_a_report_on_d_is_not_used_on_d_but_the_day_after():
    # 2020Q1 is reported on 2020-04-30: a rebalance that day still sees 2019Q4 (0.009)
    assert yields_on(Q1_2020_REPORTED)["PAY"] == pytest.approx(45 / 5000)
    # the next trading day it sees 2020Q1: 55 / 5000 = 0.011
    assert yields_on(date(2020, 5, 1))["PAY"] == pytest.approx(55 / 5000)


def test_an_annual_row_uses_the_years_dividends():
    # ANN: 40 / (50 x 200) = 0.004 once FY2019 is available (after 2020-03-30)
    assert yields_on(date(2020, 3, 31))["ANN"] == pytest.approx(40 / 10_000)


def test_the_yield_matches_a_second_computation_from_the_raw_rows():
    # the same number by hand from the raw rows: the last four quarters reported before D,
    # summed with their sign dropped, over close x the shares of the latest row
    raw = raw_fundamentals().filter(
        (pl.col("ticker") == "PAY") & (pl.col("report_date") < date(2020, 5, 1))
    )
    paid = raw.filter(pl.col("item") == "dividends_paid").sort("period_end").tail(4)
    expected = sum(abs(v) for v in paid["value"]) / (50.0 * 100.0)
    assert yields_on(date(2020, 5, 1))["PAY"] == pytest.approx(expected, rel=1e-12)

"""The S&P 500 files: split-adjusted prices, as-reported shares, one basis in factors.values.

AAPL split 7:1 on 2014-06-09 and NFLX 7:1 on 2015-07-15 (public record). The files restate every
price for those splits, while the vendor's "Estimated Shares Outstanding" of the fiscal years
before them are pre-split. The reference below is computed from the raw files with the csv
module alone: close of the last trading day before D x the shares of the latest fiscal year
available before D (period end + 90 days, the default annual lag), x 7 for a year ending before
the split.
"""

from __future__ import annotations

import csv
import gzip
from datetime import date, timedelta

import polars as pl
import pytest

from quant_pipeline.core.data import curation as curate
from quant_pipeline.core.data.calendar import rebalance_dates, trading_days
from quant_pipeline.core.data.share_basis import SPLIT_ADJUSTED, share_basis_events
from quant_pipeline.core.factors.point_in_time import point_in_time_factor_values
from quant_pipeline.sources.base import FetchRequest
from quant_pipeline.sources.files import FilesSource

SPLITS = {"AAPL": (date(2014, 6, 9), 7.0), "NFLX": (date(2015, 7, 15), 7.0)}


@pytest.fixture(scope="module")
def sp500(sp500_dir):
    source = FilesSource(sp500_dir)
    request = FetchRequest()
    prices = curate.curate_prices(source.prices(request)).prices
    raw_fundamentals = source.fundamentals(request)
    fundamentals = curate.curate_fundamentals(raw_fundamentals)
    events = share_basis_events(None, prices, fundamentals)
    dates = rebalance_dates(trading_days(prices), "monthly")
    securities = curate.curate_securities(source.securities(request))
    values = point_in_time_factor_values(
        prices,
        curate.fundamentals_vintages(raw_fundamentals),
        securities,
        dates,
        share_basis=events,
    )
    return {"events": events, "values": values, "dates": dates}


def reference_caps(sp500_dir, ticker: str, dates: list[date]) -> dict[date, float | None]:
    closes: dict[date, float] = {}
    with gzip.open(sp500_dir / "prices.csv.gz", "rt", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["ticker"] == ticker:
                closes[date.fromisoformat(row["date"])] = float(row["close"])
    shares: dict[date, float | None] = {}
    with open(sp500_dir / "fundamentals.csv", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        for fields in reader:
            # the data rows carry a leading row number that the header does not name
            row = dict(zip(header, fields[len(fields) - len(header) :], strict=True))
            if row["Ticker Symbol"] == ticker:
                text = row["Estimated Shares Outstanding"]
                shares[date.fromisoformat(row["Period Ending"])] = float(text) if text else None
    split_day, ratio = SPLITS[ticker]
    out: dict[date, float | None] = {}
    for d in dates:
        known = [p for p in shares if p + timedelta(days=90) < d]
        before = [t for t in closes if t < d]
        if not known or not before:
            continue
        period = max(known)
        count = shares[period]
        factor = ratio if period < split_day else 1.0
        out[d] = None if count is None else closes[max(before)] * count * factor
    return out


def test_aapl_and_nflx_splits_are_inferred_on_split_adjusted_prices(sp500):
    events = sp500["events"].filter(pl.col("ticker").is_in(list(SPLITS)))
    assert events.select(
        "ticker", "period_before", "period_after", "ratio", "price_basis"
    ).rows() == [
        ("AAPL", date(2013, 9, 28), date(2014, 9, 27), 7.0, SPLIT_ADJUSTED),
        ("NFLX", date(2014, 12, 31), date(2015, 12, 31), 7.0, SPLIT_ADJUSTED),
    ]


@pytest.mark.parametrize("ticker", sorted(SPLITS))
def test_market_caps_are_within_10_percent_of_split_consistent_values_on_every_date(
    sp500, sp500_dir, ticker
):
    values = sp500["values"].filter(pl.col("ticker") == ticker)
    got = dict(values.select("rebalance_date", "market_cap").iter_rows())
    expected = reference_caps(sp500_dir, ticker, sp500["dates"])
    assert len(expected) >= 40
    compared = 0
    for d, ref in expected.items():
        if ref is None:  # the vendor has no share count for that year
            assert got[d] is None
            continue
        assert got[d] == pytest.approx(ref, rel=0.10), (ticker, d)
        compared += 1
    assert compared >= 30
    # NFLX's 2014 market cap: about $21-28B (was $3-4B on the mixed basis)
    if ticker == "NFLX":
        caps_2014 = [got[d] for d in expected if d.year == 2014 and got[d] is not None]
        assert 18e9 < min(caps_2014) and max(caps_2014) < 30e9

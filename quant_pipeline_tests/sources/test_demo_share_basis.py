"""Share re-basing on the demo market's splits (as-traded prices, splits on file).

Between a split and the first report after it, a demo ticker's latest shares are pre-split while
its close is post-split: ``factors.values.market_cap`` must multiply those shares by the ratio
from the split day on, and only from then.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import polars as pl
import pytest

from quant_pipeline.core.data import curation as curate
from quant_pipeline.core.data.share_basis import (
    AS_TRADED,
    METHOD_CORPORATE_ACTION,
    share_basis_events,
)
from quant_pipeline.core.factors.values import factor_values
from quant_pipeline.sources.demo import generate_market

SMALL = {"n_tickers": 40, "start": date(2020, 1, 1), "end": date(2021, 12, 31), "seed": 7}


@pytest.fixture(scope="module")
def demo():
    market = generate_market(**SMALL)
    actions = curate.curate_actions(market.corporate_actions)
    prices = curate.curate_prices(market.prices, actions).prices
    fundamentals = curate.curate_fundamentals(market.fundamentals)
    events = share_basis_events(actions, prices, fundamentals)
    return market, actions, prices, fundamentals, events


def test_every_demo_split_is_an_as_traded_event_from_the_corporate_actions(demo):
    _, actions, _, _, events = demo
    splits = actions.filter(pl.col("action") == "split").select("ticker", "date", "value")
    assert splits.height >= 1
    on_file = events.filter(pl.col("method") == METHOD_CORPORATE_ACTION)
    assert (
        on_file.select("ticker", "date", pl.col("ratio").alias("value"))
        .sort("ticker", "date")
        .rows()
        == splits.sort("ticker", "date").rows()
    )
    assert set(on_file["price_basis"]) == {AS_TRADED}


def test_market_cap_uses_split_adjusted_shares_from_the_split_day_until_the_next_report(demo):
    _, _, prices, fundamentals, events = demo
    split = events.filter(pl.col("period_before").is_not_null()).row(0, named=True)
    ticker, day, ratio = split["ticker"], split["date"], split["ratio"]
    reports = fundamentals.filter(pl.col("ticker") == ticker)
    shares = dict(reports.select("period_end", "shares_outstanding").iter_rows())
    next_report = reports.filter(pl.col("period_end") == split["period_after"])["available_at"]
    days = prices.filter(pl.col("ticker") == ticker)["date"]
    end = next_report.item() + timedelta(days=10)
    window = days.filter((days > day - timedelta(days=30)) & (days <= end))
    securities = pl.DataFrame({"ticker": prices["ticker"].unique(), "sector": "x"})
    values = factor_values(prices, fundamentals, securities, window, share_basis=events)
    plain = factor_values(prices, fundamentals, securities, window)
    rows = values.filter(pl.col("ticker") == ticker).join(
        plain.select("rebalance_date", "ticker", pl.col("market_cap").alias("plain")),
        on=["rebalance_date", "ticker"],
    )
    closes = dict(prices.filter(pl.col("ticker") == ticker).select("date", "close").iter_rows())
    seen = set()
    for row in rows.iter_rows(named=True):
        t = max(d for d in closes if d < row["rebalance_date"])  # the price's date
        period = row["fundamentals_period_end"]
        rebased = t >= day and period <= split["period_before"]
        factor = ratio if rebased else 1.0
        assert row["price"] == closes[t]
        assert math.isclose(row["market_cap"], closes[t] * shares[period] * factor, rel_tol=1e-12)
        assert math.isclose(row["plain"] * factor, row["market_cap"], rel_tol=1e-12)
        seen.add((t >= day, rebased))
    # before the split, between the split and the next report, and after that report
    assert seen == {(False, False), (True, True), (True, False)}
    # across the split day and the next report the cap moves like the adjusted price (an
    # ordinary day), never by the split ratio
    caps = rows.sort("rebalance_date")["market_cap"].to_list()
    assert max(abs(math.log(b / a)) for a, b in zip(caps, caps[1:], strict=False)) < 0.2


def test_avg_volume_puts_pre_split_volumes_on_the_post_split_basis(demo):
    _, _, prices, fundamentals, events = demo
    split = events.filter(pl.col("period_before").is_not_null()).row(0, named=True)
    ticker, day, ratio = split["ticker"], split["date"], split["ratio"]
    rows = prices.filter(pl.col("ticker") == ticker).sort("date")
    after = rows.filter(pl.col("date") > day)["date"].head(30)
    securities = pl.DataFrame({"ticker": [ticker], "sector": "x"})
    values = factor_values(rows, fundamentals, securities, after, share_basis=events)
    volumes = rows.select("date", "volume").rows()
    for d, got in values.select("rebalance_date", "avg_volume").iter_rows():
        window = [(s, v) for s, v in volumes if s < d][-63:]  # the 63 rows up to t
        # as traded, a volume before the split day counts ratio times as many shares after it
        expected = sum(v * (ratio if s < day else 1.0) for s, v in window) / len(window)
        assert math.isclose(got, expected, rel_tol=1e-9), d

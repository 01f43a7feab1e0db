"""The yahoo source against real recorded Yahoo responses, replayed at yfinance's HTTP layer."""

from __future__ import annotations

import json
import random
from datetime import date

import pandas as pd
import polars as pl
import pytest
import requests
from polars.testing import assert_frame_equal

from quant_pipeline.core.data.schema import RAW_CORPORATE_ACTIONS, RAW_FUNDAMENTALS, RAW_PRICES
from quant_pipeline.sources.base import FetchRequest, Source, SourceError
from quant_pipeline.sources.yahoo import (
    INGEST_LOG_SCHEMA,
    YahooSource,
    attach_report_dates,
    statement_to_long,
    unadjusted_prices,
    yahoo_symbol,
)


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_source(replay, tickers, **kwargs) -> tuple[YahooSource, Sleeps]:
    sleeps = Sleeps()
    source = YahooSource(
        tickers, session=replay, sleep=sleeps, rng=random.Random(7), max_workers=2, **kwargs
    )
    return source, sleeps


def log_of(source: YahooSource, dataset: str) -> dict[str, tuple[str, int]]:
    log = source.ingest_log.filter(pl.col("dataset") == dataset)
    return {t: (s, a) for t, s, a in log.select("ticker", "status", "attempts").iter_rows()}


def test_yahoo_source_implements_the_source_protocol(replay):
    source, _ = make_source(replay, ["AAPL"])
    assert isinstance(source, Source)
    assert source.universe() == ["AAPL"]


def test_nvda_prices_are_as_traded_before_the_4_for_1_split_of_2021_07_20(replay, yahoo_fixtures):
    source, _ = make_source(replay, ["NVDA"])
    prices = source.prices(FetchRequest())
    assert prices.schema == pl.Schema(RAW_PRICES)
    # Yahoo's closes (split-adjusted) straight from the recorded payload, for comparison.
    body = json.loads(
        (
            yahoo_fixtures
            / "node-yahoo-finance2"
            / "historical-via-chart-NVDA-split-2021-02-01-to-2022-01-31.csv.json"
        ).read_text()
    )["response"]["bodyJson"]["chart"]["result"][0]
    stamps = [pd.Timestamp(t, unit="s", tz="America/New_York").date() for t in body["timestamp"]]
    yahoo_close = dict(zip(stamps, body["indicators"]["quote"][0]["close"], strict=True))
    nvda = {d: c for d, c in prices.select("date", "close").iter_rows()}
    # Before the split, the as-traded price is 4 times Yahoo's split-adjusted one.
    assert nvda[date(2021, 7, 19)] == pytest.approx(4 * yahoo_close[date(2021, 7, 19)])
    assert nvda[date(2021, 7, 20)] == pytest.approx(yahoo_close[date(2021, 7, 20)])
    assert prices["adj_close"].null_count() == 0
    actions = source.corporate_actions(FetchRequest())
    assert actions.schema == pl.Schema(RAW_CORPORATE_ACTIONS)
    splits = actions.filter(pl.col("action") == "split").select("ticker", "date", "value")
    assert_frame_equal(
        splits, pl.DataFrame({"ticker": ["NVDA"], "date": [date(2021, 7, 20)], "value": [4.0]})
    )


def test_msft_dividends_per_share_are_listed_with_their_dates(replay):
    source, _ = make_source(replay, ["MSFT"])
    actions = source.corporate_actions(FetchRequest())
    expected = pl.DataFrame(
        {
            "ticker": ["MSFT"] * 4,
            "date": [date(2021, 2, 17), date(2021, 5, 19), date(2021, 8, 18), date(2021, 11, 17)],
            "action": ["dividend"] * 4,
            "value": [0.56, 0.56, 0.56, 0.62],
        }
    )
    assert_frame_equal(actions.select(expected.columns), expected)
    # prices were fetched once for both datasets
    assert source.ingest_log["dataset"].to_list() == ["prices"]


def test_aapl_quarterly_fundamentals_are_mapped_to_canonical_items(replay):
    source, _ = make_source(replay, ["AAPL"])
    fundamentals = source.fundamentals(FetchRequest())
    assert fundamentals.schema == pl.Schema(RAW_FUNDAMENTALS)
    q4 = fundamentals.filter(
        (pl.col("period_type") == "Q") & (pl.col("period_end") == date(2024, 12, 31))
    )
    values = dict(q4.select("item", "value").iter_rows())
    # Recorded fundamentals-timeseries payload, quarter ending 2024-12-31.
    assert values["ebit"] == 42_832_000_000
    assert values["revenue"] == 124_300_000_000
    assert values["net_income"] == 36_330_000_000
    assert values["total_assets"] > 0 and values["shares_outstanding"] > 0
    assert set(fundamentals["period_type"].unique()) == {"Q", "A"}
    # The earnings calendar is not recorded: report dates stay null (the lag rule applies).
    assert fundamentals["report_date"].null_count() == fundamentals.height


def test_profiles_come_from_the_quote_summary(replay):
    source, _ = make_source(replay, ["AAPL"])
    row = source.securities(FetchRequest()).row(0, named=True)
    assert row["ticker"] == "AAPL"
    assert row["name"] == "Apple Inc."
    assert (row["sector"], row["industry"]) == ("Technology", "Consumer Electronics")
    assert (row["exchange"], row["quote_type"], row["currency"]) == ("NMS", "EQUITY", "USD")
    assert row["shares_outstanding"] > 1e10 and row["market_cap"] > 1e12
    assert row["source"] == "yahoo"


def test_an_unknown_ticker_is_logged_empty_and_does_not_fail_the_others(replay):
    source, _ = make_source(replay, ["MSFT", "NVDA", "NOSUCH"])
    prices = source.prices(FetchRequest())
    assert sorted(prices["ticker"].unique()) == ["MSFT", "NVDA"]
    log = source.ingest_log
    assert log.schema == pl.Schema(INGEST_LOG_SCHEMA)
    nosuch = log.filter(pl.col("ticker") == "NOSUCH").row(0, named=True)
    assert nosuch["status"] == "empty" and nosuch["rows"] == 0 and nosuch["error"]
    assert source.failed_tickers("prices") == ["NOSUCH"]


@pytest.mark.parametrize("answer", ["empty", "html", "malformed"])
def test_a_bad_chart_response_fails_only_that_ticker(replay, answer):
    replay.script("chart", "MSFT", *[answer] * 10)
    source, _ = make_source(replay, ["MSFT", "NVDA"])
    prices = source.prices(FetchRequest())
    assert prices["ticker"].unique().to_list() == ["NVDA"]
    status = log_of(source, "prices")
    assert status["NVDA"][0] == "ok"
    assert status["MSFT"][0] in {"empty", "error"}


def test_http_429_is_retried_with_backoff_then_succeeds(replay):
    replay.script("chart", "NVDA", 429, 429)
    source, sleeps = make_source(replay, ["NVDA"], backoff_base=0.5)
    prices = source.prices(FetchRequest())
    assert prices.height == 252
    status, attempts = log_of(source, "prices")["NVDA"]
    assert status == "ok" and attempts >= 2
    # pause k (from 0) lies in [base * 2**k, 2 * base * 2**k): exponential with jitter
    for k, pause in enumerate(sleeps):
        assert 0.5 * 2**k <= pause < 2 * 0.5 * 2**k


def test_http_429_on_every_attempt_exhausts_the_retries(replay):
    replay.script("chart", "MSFT", *[429] * 50)
    source, sleeps = make_source(replay, ["MSFT", "NVDA"], retries=2)
    source.prices(FetchRequest())
    status, attempts = log_of(source, "prices")["MSFT"]
    assert (status, attempts) == ("error", 3)
    assert len(sleeps) == 2
    assert "Rate" in source.ingest_log.filter(pl.col("ticker") == "MSFT")["error"][0]


def test_fundamentals_do_not_depend_on_yfinances_sticky_chunked_mode(replay, monkeypatch):
    # Any empty fundamentals answer (a ticker with no statements) switches yfinance to chunked
    # requests for the whole process; with two worker threads that happened at random while
    # another ticker was being fetched, and AAPL lost its cash-flow statement (dividends_paid).
    from yfinance.data import YfData

    source, _ = make_source(replay, ["AAPL"])
    single = source.fundamentals(FetchRequest())
    chunked_source, _ = make_source(replay, ["AAPL"])
    monkeypatch.setattr(YfData(), "fundamentals_use_chunked", True, raising=False)
    YfData.cache_get.cache_clear()
    chunked = chunked_source.fundamentals(FetchRequest())
    columns = ["period_end", "period_type", "item", "value"]
    assert chunked.select(columns).sort(columns).equals(single.select(columns).sort(columns))
    assert single.filter(pl.col("item") == "dividends_paid").height == 7


def test_a_ticker_without_fundamentals_is_logged_empty(replay):
    source, _ = make_source(replay, ["AAPL", "NVDA"])
    fundamentals = source.fundamentals(FetchRequest())
    assert fundamentals["ticker"].unique().to_list() == ["AAPL"]
    assert log_of(source, "fundamentals")["NVDA"][0] == "empty"


def test_network_errors_everywhere_raise_saying_yahoo_is_unreachable(replay):
    for ticker in ("MSFT", "NVDA", "AAPL"):
        replay.script("chart", ticker, *[requests.ConnectionError("Could not resolve host")] * 50)
    source, sleeps = make_source(replay, ["MSFT", "NVDA", "AAPL"], retries=1, abort_after=2)
    with pytest.raises(SourceError, match="unreachable") as info:
        source.prices(FetchRequest())
    assert "MSFT" in str(info.value) and "ConnectionError" in str(info.value)
    # every ticker is in the log, the last ones skipped without retrying
    assert source.ingest_log.height == 3
    assert source.ingest_log["status"].to_list() == ["error"] * 3


def test_nothing_returned_for_any_ticker_raises(replay):
    source, _ = make_source(replay, ["NOSUCH1", "NOSUCH2"])
    with pytest.raises(SourceError, match="no data came back for any of 2 tickers"):
        source.prices(FetchRequest())


@pytest.mark.parametrize(("share", "raises"), [(0.5, False), (0.25, True)])
def test_half_failing_raises_only_beyond_max_failed_share(replay, share, raises):
    source, _ = make_source(replay, ["MSFT", "NVDA", "NOSUCH1", "NOSUCH2"], max_failed_share=share)
    if raises:
        with pytest.raises(SourceError, match="2 of 4 tickers failed") as info:
            source.prices(FetchRequest())
        assert "NOSUCH1" in str(info.value) and "NOSUCH2" in str(info.value)
    else:
        prices = source.prices(FetchRequest())
        assert sorted(prices["ticker"].unique()) == ["MSFT", "NVDA"]
    assert source.failed_tickers() == ["NOSUCH1", "NOSUCH2"]


def test_incremental_fetch_asks_yahoo_from_the_requested_start(replay):
    source, _ = make_source(replay, ["NVDA", "MSFT"])
    prices = source.prices(FetchRequest(per_ticker_start={"NVDA": date(2021, 12, 1)}))
    first = dict(prices.group_by("ticker").agg(pl.col("date").min()).iter_rows())
    assert first == {"NVDA": date(2021, 12, 1), "MSFT": date(2021, 2, 1)}
    # 2021-12-01 00:00 New York = 05:00 UTC = 1638334800 s since the epoch
    period1 = {s: p.get("period1") for r, s, p in replay.params if r == "chart" and "period1" in p}
    assert period1["NVDA"] == 1638334800
    assert period1["MSFT"] < 0  # no start: the whole history (period=max)


def test_unadjusted_prices_multiply_by_later_splits_and_divide_volume():
    history = pl.DataFrame(
        {
            "ticker": ["X", "X", "X", "Y"],
            "date": [date(2020, 1, d) for d in (1, 2, 3)] + [date(2020, 1, 1)],
            "open": [10.0, 11.0, 12.0, 5.0],
            "high": [10.0, 11.0, 12.0, 5.0],
            "low": [10.0, 11.0, 12.0, 5.0],
            "close": [10.0, 11.0, 12.0, 5.0],
            "adj_close": [9.0, 10.0, 12.0, 5.0],
            "volume": [400.0, 400.0, 400.0, 7.0],
            "dividend": [0.0, 0.0, 0.0, 0.0],
            "split": [0.0, 2.0, 0.0, 0.0],
        }
    )
    out = unadjusted_prices(history)
    # 2:1 split on Jan 2: Jan 1 traded at 2 x 10 = 20 with 400 / 2 = 200 shares; later unchanged.
    assert out["close"].to_list() == [20.0, 11.0, 12.0, 5.0]
    assert out["volume"].to_list() == [200.0, 400.0, 400.0, 7.0]
    assert out["adj_close"].to_list() == [9.0, 10.0, 12.0, 5.0]


def test_statement_rows_fall_back_to_the_next_yahoo_name_per_period():
    periods = [pd.Timestamp("2024-12-31"), pd.Timestamp("2024-09-30")]
    statement = pd.DataFrame(
        {periods[0]: [100.0, 90.0], periods[1]: [float("nan"), 80.0]},
        index=["Stockholders Equity", "Common Stock Equity"],
    )
    out = statement_to_long(statement, "T", "Q").sort("period_end")
    expected = pl.DataFrame(
        {
            "ticker": ["T", "T"],
            "period_end": [date(2024, 9, 30), date(2024, 12, 31)],
            "period_type": ["Q", "Q"],
            "item": ["total_equity", "total_equity"],
            "value": [80.0, 100.0],
        }
    )
    assert_frame_equal(out, expected)


def test_report_date_is_the_first_earnings_date_within_120_days_after_period_end():
    long = pl.DataFrame(
        {
            "ticker": ["T", "T", "T"],
            "period_end": [date(2024, 3, 31), date(2024, 6, 30), date(2023, 3, 31)],
            "item": ["ebit"] * 3,
        }
    )
    earnings = [date(2024, 5, 2), date(2024, 8, 1), date(2024, 10, 31), date(2023, 3, 31)]
    out = attach_report_dates(long, earnings)
    # 2023-03-31: the earnings date on the period end itself does not count, the next one
    # (2024-05-02) is 398 days later -> null.
    assert out["report_date"].to_list() == [date(2024, 5, 2), date(2024, 8, 1), None]


def test_share_class_tickers_use_yahoos_dash():
    assert yahoo_symbol("BRK.B") == "BRK-B"


def test_offline_stops_after_abort_after_failed_attempts_not_after_every_tickers_retries(replay):
    tickers = [f"T{i}" for i in range(20)]
    for ticker in tickers:
        replay.script("chart", ticker, *[requests.ConnectionError("Could not resolve host")] * 9)
    source, sleeps = make_source(replay, tickers, retries=4, abort_after=8)
    with pytest.raises(SourceError, match="unreachable"):
        source.prices(FetchRequest())
    # 8 failed attempts abort the fetch; at most one more attempt was already in flight on the
    # second worker. Counting tickers instead would make 8 x 5 = 40 attempts and 32 pauses.
    assert 8 <= replay.count("chart") <= 9
    assert len(sleeps) <= 8
    assert source.ingest_log.height == 20

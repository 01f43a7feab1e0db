"""Benchmark tickers fetched by the yahoo source beside the universe, on recorded responses."""

import random

import polars as pl

from quant_pipeline.sources.base import FetchRequest
from quant_pipeline.sources.yahoo import YahooSource


def test_benchmark_prices_come_beside_the_universe_and_a_missing_one_is_only_listed(replay):
    # QQQ has a recorded chart; SPY has none in the fixtures (Yahoo's "Not Found" answer)
    source = YahooSource(
        ["AAPL"],
        session=replay,
        sleep=lambda _s: None,
        rng=random.Random(7),
        max_workers=2,
        retries=0,
        benchmark_tickers=["QQQ", "SPY", "aapl"],
    )
    prices = source.prices(FetchRequest())
    assert sorted(prices["ticker"].unique()) == ["AAPL", "QQQ"]
    assert source.missing_benchmarks == ["SPY"]
    assert source.universe() == ["AAPL"]  # benchmarks are priced, not members
    log = source.ingest_log.filter(pl.col("ticker") == "SPY")
    assert log.select("dataset", "status").rows() == [("prices", "empty")]
    # an explicit ticker request (a refresh of restated tickers) fetches only those
    qqq, aapl = replay.count("chart", "QQQ"), replay.count("chart", "AAPL")
    assert qqq >= 1
    source.prices(FetchRequest(tickers=("AAPL",)))
    assert replay.count("chart", "QQQ") == qqq
    assert replay.count("chart", "AAPL") > aapl

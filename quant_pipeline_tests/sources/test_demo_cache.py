"""A big demo market hands its price frame over instead of keeping it for the whole run."""

from datetime import date

from polars.testing import assert_frame_equal

from quant_pipeline.sources import demo
from quant_pipeline.sources.base import FetchRequest

START, END = date(2020, 1, 1), date(2020, 12, 31)


def test_a_big_market_releases_its_cached_prices_and_regenerates_identical_ones(monkeypatch):
    monkeypatch.setattr(demo, "RELEASE_PRICES_ROWS", 1)  # every market counts as big
    source = demo.DemoSource(n_tickers=12, start=START, seed=5, end=END)
    fundamentals = source.fundamentals(FetchRequest())
    first = source.prices(FetchRequest())
    key = demo._cache_key(12, START, END, 5)
    assert demo._CACHE[key].prices.height == 0  # handed over, not kept
    # the small frames stay cached: same object, no regeneration
    assert source.fundamentals(FetchRequest()) is fundamentals
    # asking again regenerates the same prices
    assert_frame_equal(source.prices(FetchRequest()), first)


def test_a_small_market_keeps_its_prices_cached(monkeypatch):
    monkeypatch.setattr(demo, "RELEASE_PRICES_ROWS", 10**12)
    source = demo.DemoSource(n_tickers=12, start=START, seed=6, end=END)
    first = source.prices(FetchRequest())
    assert source.prices(FetchRequest()) is first

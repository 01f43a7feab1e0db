"""Benchmark series: cap-weighted point in time, a ticker from the data, the stored table."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quant_pipeline.core.backtest.benchmark_returns import (
    benchmark_series,
    benchmark_table,
    cap_weighted_benchmark,
    ticker_benchmark,
    universe_benchmarks,
)
from quant_pipeline.core.backtest.reference_engine import BacktestInputError, equal_weight_benchmark

D = [date(2024, 1, i) for i in range(1, 6)]


def prices_frame(closes: dict[str, list[float | None]]) -> pl.DataFrame:
    rows = [
        (ticker, day, value)
        for ticker, values in closes.items()
        for day, value in zip(D, values, strict=False)
        if value is not None
    ]
    frame = pl.DataFrame(
        rows, schema={"ticker": pl.String, "date": pl.Date, "close": pl.Float64}, orient="row"
    ).sort("ticker", "date")
    return frame.with_columns(pl.col("close").pct_change().over("ticker").alias("daily_return"))


# Closes (as traded = adjusted here):
#        d1   d2   d3   d4   d5
# A      10   11   11   12   12
# B      20   20   18   18   27
PRICES = prices_frame({"A": [10, 11, 11, 12, 12], "B": [20, 20, 18, 18, 27]})


def test_cap_weighted_benchmark_weights_returns_by_yesterdays_cap_with_shares_known_before():
    # A: 100 shares known since d1 (available d1: usable from d2 on, strictly before the day);
    # from d4 on 300 shares (available d3). B: 50 shares known since always (profile).
    shares = pl.DataFrame(
        {
            "ticker": ["A", "A", "B"],
            "available_at": [D[0], D[2], None],
            "shares_outstanding": [100.0, 300.0, 50.0],
        },
        schema_overrides={"available_at": pl.Date},
    )
    got = cap_weighted_benchmark(PRICES, shares)
    # d2: caps on d1's close: A 10*100 = 1000, B 20*50 = 1000; returns A +10%, B 0% -> 5%.
    # d3: A 11*100 = 1100, B 20*50 = 1000; returns A 0, B -10% -> -100 / 2100.
    # d4: A uses 300 shares (available d3 < d4): 11*300 = 3300, B 18*50 = 900;
    #     returns A 12/11 - 1, B 0 -> 3300 * (1/11) / 4200 = 300 / 4200.
    # d5: A 12*300 = 3600, B 900; returns A 0, B +50% -> 450 / 4500 = 0.1.
    assert got["date"].to_list() == D[1:]
    assert got["benchmark_return"].to_list() == pytest.approx(
        [0.05, -100 / 2100, 300 / 4200, 0.1], rel=1e-12
    )


def test_cap_weighted_benchmark_skips_tickers_before_their_shares_are_known():
    # A's shares become known on d2 (usable from d3): on d2 only B counts (0%).
    shares = pl.DataFrame(
        {"ticker": ["A", "B"], "available_at": [D[1], D[0]], "shares_outstanding": [100.0, 50.0]}
    )
    got = cap_weighted_benchmark(PRICES, shares)
    assert got["benchmark_return"][0] == 0.0
    assert got["benchmark_return"][1] == pytest.approx(-100 / 2100)


def test_cap_weighted_benchmark_counts_only_members_on_each_date():
    shares = pl.DataFrame(
        {"ticker": ["A", "B"], "available_at": [None, None], "shares_outstanding": [100.0, 50.0]},
        schema_overrides={"available_at": pl.Date},
    )
    members = pl.DataFrame(
        {"ticker": ["A", "B"], "start_date": [D[0], D[3]], "end_date": [None, None]},
        schema_overrides={"end_date": pl.Date},
    )
    got = cap_weighted_benchmark(PRICES, shares, membership=members)
    # B joins on d4: d2 and d3 are A alone (10%, 0%); d4 as above 1100*(1/11)/2000 = 0.05.
    assert got["benchmark_return"].to_list() == pytest.approx(
        [0.10, 0.0, 100 / 2000, 450 / (1200 + 900)]
    )


def test_ticker_benchmark_is_that_tickers_daily_return():
    got = ticker_benchmark(PRICES, "B")
    assert got.rows() == [(D[1], 0.0), (D[2], pytest.approx(-0.1)), (D[3], 0.0), (D[4], 0.5)]


def test_unknown_benchmark_ticker_is_a_clear_error():
    with pytest.raises(BacktestInputError, match="benchmark ticker 'SPY' is not in the prices"):
        ticker_benchmark(PRICES, "SPY")


def test_benchmark_table_stacks_named_series_and_gives_them_back():
    table = benchmark_table(
        {"B": ticker_benchmark(PRICES, "B"), "A": ticker_benchmark(PRICES, "A")}
    )
    assert table.columns == ["date", "benchmark", "return"]
    assert table["benchmark"].to_list() == ["A"] * 4 + ["B"] * 4
    assert benchmark_series(table, "B")["benchmark_return"].to_list() == pytest.approx(
        [0.0, -0.1, 0.0, 0.5]
    )
    with pytest.raises(BacktestInputError, match=r"available: \['A', 'B'\]"):
        benchmark_series(table, "cap_weight")


def test_overlapping_membership_intervals_count_a_ticker_once_a_day():
    # A's two intervals overlap on d2-d3; counted twice, A would weigh double those days.
    single = pl.DataFrame(
        {"ticker": ["A", "B"], "start_date": [D[0], D[0]], "end_date": [None, None]},
        schema_overrides={"end_date": pl.Date},
    )
    overlapping = pl.DataFrame(
        {
            "ticker": ["A", "A", "B"],
            "start_date": [D[0], D[1], D[0]],
            "end_date": [D[2], None, None],
        }
    )
    shares = pl.DataFrame(
        {"ticker": ["A", "B"], "available_at": [None, None], "shares_outstanding": [100.0, 50.0]},
        schema_overrides={"available_at": pl.Date},
    )
    for build in (
        lambda m: equal_weight_benchmark(PRICES, membership=m),
        lambda m: cap_weighted_benchmark(PRICES, shares, membership=m),
    ):
        assert build(overlapping).equals(build(single))
    # d3: A 11/11 - 1 = 0, B 18/20 - 1 = -0.1 -> equal weight -0.05
    ew = equal_weight_benchmark(PRICES, membership=overlapping)
    assert ew.filter(pl.col("date") == D[2])["benchmark_return"].item() == pytest.approx(-0.05)


SHARES = pl.DataFrame(
    {
        "ticker": ["A", "A", "B"],
        "available_at": [D[0], D[2], None],
        "shares_outstanding": [100.0, 300.0, 50.0],
    },
    schema_overrides={"available_at": pl.Date},
)


def test_universe_benchmarks_from_ticker_batches_are_the_two_universe_series():
    batches = [PRICES.filter(pl.col("ticker") == t) for t in ("B", "A")]  # any batch order
    got = universe_benchmarks(iter(batches), SHARES)
    assert got["cap_weight"]["benchmark_return"].to_list() == pytest.approx(
        [0.05, -100 / 2100, 300 / 4200, 0.1], rel=1e-12
    )
    # equal weight: the mean of A's and B's returns each day
    assert got["equal_weight"]["benchmark_return"].to_list() == pytest.approx(
        [(0.1 + 0.0) / 2, (0.0 - 0.1) / 2, (12 / 11 - 1 + 0.0) / 2, (0.0 + 0.5) / 2], rel=1e-12
    )
    members = pl.DataFrame(
        {"ticker": ["A", "B"], "start_date": [D[0], D[3]], "end_date": [None, None]},
        schema_overrides={"end_date": pl.Date},
    )
    only = universe_benchmarks(iter(batches), None, membership=members, equal_weight=True)
    assert set(only) == {"equal_weight"}  # no shares, no cap-weighted series
    assert_frame_equal(only["equal_weight"], equal_weight_benchmark(PRICES, members))
    assert universe_benchmarks(iter(batches), SHARES, equal_weight=False).keys() == {"cap_weight"}
    with pytest.raises(BacktestInputError, match="no price batch"):
        universe_benchmarks(iter([]), SHARES)


def test_universe_benchmarks_in_batches_equal_the_whole_frame_series_on_a_demo_market():
    from quant_pipeline.core.data import curation as curate
    from quant_pipeline.sources.demo import generate_market
    from quant_pipeline_tests.core.strategies.test_signal_batches import changing_membership

    market = generate_market(40, date(2019, 1, 1), date(2021, 12, 31), seed=8)
    prices = curate.curate_prices(market.prices, market.corporate_actions).prices.select(
        "ticker", "date", "close", "daily_return"
    )
    members = changing_membership(
        curate.curate_membership(market.membership), date(2020, 1, 2), date(2021, 6, 30)
    )
    rng = np.random.default_rng(2)
    tickers = prices["ticker"].unique().sort()
    shares = pl.DataFrame(
        {
            "ticker": tickers.to_list() * 2,
            "available_at": [date(2019, 3, 1)] * tickers.len() + [date(2020, 6, 1)] * tickers.len(),
            "shares_outstanding": rng.uniform(1e6, 1e8, 2 * tickers.len()),
        }
    )
    counts = prices.group_by("ticker").agg(pl.len().alias("rows"))
    runs = curate.ticker_batches(counts, 5_000)
    assert len(runs) > 3
    batches = [prices.filter(pl.col("ticker").is_in(run)) for run in runs]
    got = universe_benchmarks(iter(batches), shares, membership=members)
    whole_ew = equal_weight_benchmark(prices, members)
    whole_cw = cap_weighted_benchmark(prices, shares, membership=members)
    assert not whole_ew.equals(equal_weight_benchmark(prices))  # membership matters here
    assert_frame_equal(got["equal_weight"], whole_ew, abs_tol=1e-15, rel_tol=0)
    assert_frame_equal(got["cap_weight"], whole_cw, abs_tol=1e-15, rel_tol=0)
    assert got["cap_weight"].height > 500

"""Survivorship: winners that later die must be held while they were listed, and pay for it.

Market: 600 weekdays from 2016-01-01. Survivors S1..S4 grow steadily (0.02%..0.08% a day) and
are index members throughout. W1 and W2 are the best performers (+0.30% / +0.25% a day) until
day 400, lose 3% a day for 20 days and delist after day 419 (prices stop; membership ends
that day). A quarterly momentum strategy holds the top 2.

A point-in-time universe must pick W1 and W2 while they lead (and suffer the crash); a
survivorship-biased universe (today's members only) never sees them and looks better.
"""

from datetime import date

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quant_pipeline.core.backtest.reference_engine import run_backtest
from quant_pipeline.core.data.calendar import rebalance_dates, trading_days
from quant_pipeline.core.data.curation import fundamentals_vintages
from quant_pipeline.core.data.schema import RAW_FUNDAMENTALS, empty
from quant_pipeline.core.factors.point_in_time import point_in_time_factor_values
from quant_pipeline.core.strategies.scoring import score
from quant_pipeline.core.strategies.spec import parse_strategy
from quant_pipeline.core.strategies.target_weights import target_weights

N_DAYS, LAST_W = 600, 419
DAYS = pl.date_range(date(2016, 1, 1), date(2019, 1, 1), "1d", eager=True)
DAYS = DAYS.filter(DAYS.dt.weekday() <= 5).head(N_DAYS)
DRIFT = {"S1": 0.0002, "S2": 0.0004, "S3": 0.0006, "S4": 0.0008, "W1": 0.0030, "W2": 0.0025}
SPEC = parse_strategy(
    {
        "name": "momentum_top2",
        "rebalance": "quarterly",
        "scoring": {"method": "weighted_zscore", "factors": {"momentum_12_1": 1.0}},
        "portfolio": {"top_n": 2},
    }
)


def price_path(ticker: str) -> np.ndarray:
    daily = np.full(N_DAYS, DRIFT[ticker])
    if ticker.startswith("W"):
        daily[400:] = -0.03
    return 10.0 * np.cumprod(1.0 + daily)


def make_market():
    frames = []
    for ticker in DRIFT:
        n = LAST_W + 1 if ticker.startswith("W") else N_DAYS
        frames.append(
            pl.DataFrame({"ticker": ticker, "date": DAYS[:n], "close": price_path(ticker)[:n]})
        )
    prices = (
        pl.concat(frames)
        .with_columns(adj_close=pl.col("close"), volume=pl.lit(1e6))
        .with_columns(daily_return=pl.col("adj_close").pct_change().over("ticker"))
        .sort("ticker", "date")
    )
    membership = pl.DataFrame(
        {
            "universe": "idx",
            "ticker": list(DRIFT),
            "start_date": [DAYS[0]] * 6,
            "end_date": [None] * 4 + [DAYS[LAST_W]] * 2,
        },
        schema_overrides={"end_date": pl.Date},
    )
    securities = pl.DataFrame({"ticker": list(DRIFT), "sector": ["Energy"] * 6})
    return prices, membership, securities


def pipeline_backtest(prices, membership, securities):
    dates = rebalance_dates(trading_days(prices), "quarterly")
    vintages = fundamentals_vintages(empty(RAW_FUNDAMENTALS))
    values = point_in_time_factor_values(prices, vintages, securities, dates, membership)
    scores, _ = score(values, SPEC)
    weights, _ = target_weights(scores, SPEC)
    return values, weights, run_backtest(weights, prices, benchmark=ZERO)


ZERO = pl.DataFrame({"date": DAYS, "benchmark_return": 0.0})


def reference_weights(prices: pl.DataFrame, members: set[str], last_day: dict[str, int]):
    """Top 2 by 12-1 momentum among members listed before D, computed with plain numpy."""
    rows = []
    for d in rebalance_dates(trading_days(prices), "quarterly"):
        i = DAYS.to_list().index(d)
        t = i - 1  # last trading day before D
        if t < 252:
            continue  # no ticker has 12 months of history: nothing to rank
        moms = {
            k: price_path(k)[t - 21] / price_path(k)[t - 252] - 1
            for k in members
            if last_day.get(k, N_DAYS - 1) >= t
        }
        for k in sorted(moms, key=lambda k: -moms[k])[:2]:
            rows.append((d, k, 0.5))
    return pl.DataFrame(
        rows,
        schema={"rebalance_date": pl.Date, "ticker": pl.String, "weight": pl.Float64},
        orient="row",
    )


def test_point_in_time_universe_holds_the_later_delisted_winners_while_they_were_listed():
    prices, membership, securities = make_market()
    values, weights, _ = pipeline_backtest(prices, membership, securities)
    listed = values.filter(pl.col("ticker") == "W1")
    assert listed["in_universe"].all()
    assert listed["rebalance_date"].max() <= DAYS[LAST_W]
    held = weights.filter(pl.col("ticker").is_in(["W1", "W2"]))
    assert held["rebalance_date"].n_unique() >= 2  # the winners were bought while they led


def test_pipeline_backtest_equals_an_independent_point_in_time_reference():
    prices, membership, securities = make_market()
    _, weights, result = pipeline_backtest(prices, membership, securities)
    reference = reference_weights(prices, set(DRIFT), {"W1": LAST_W, "W2": LAST_W})
    assert_frame_equal(
        weights.select("rebalance_date", "ticker", "weight").sort("rebalance_date", "ticker"),
        reference.sort("rebalance_date", "ticker"),
    )
    expected = run_backtest(reference, prices, benchmark=ZERO)
    assert_frame_equal(result.daily, expected.daily)
    # The dead winners' trades end on their last price with the reason, not silently dropped.
    dead = result.trades.filter(pl.col("exit_reason") == "delisted")
    assert set(dead["ticker"]) == {"W1", "W2"}
    assert dead["exit_date"].to_list() == [DAYS[LAST_W]] * 2


def test_a_survivorship_biased_universe_drops_the_dead_winners_and_flatters_the_result():
    prices, membership, securities = make_market()
    _, _, pit = pipeline_backtest(prices, membership, securities)
    survivors = membership.filter(pl.col("end_date").is_null())  # "today's constituents"
    _, biased_weights, biased = pipeline_backtest(prices, survivors, securities)
    assert not biased_weights["ticker"].is_in(["W1", "W2"]).any()
    pit_final, biased_final = pit.daily["equity"][-1], biased.daily["equity"][-1]
    # The crash of the winners (-3% a day for 20 days) is real money lost by the honest backtest.
    assert biased_final > pit_final * 1.2
    assert pit.daily["equity"].to_list() != pytest.approx(biased.daily["equity"].to_list())

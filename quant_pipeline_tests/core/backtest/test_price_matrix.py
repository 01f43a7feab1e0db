"""The sweep's fast path: the share simulation on a price matrix equals ``simulate(...).daily``."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

from quant_pipeline.config.sweeps import SWEEPS_DIR, load_sweep
from quant_pipeline.core.backtest.costs import CommissionModel
from quant_pipeline.core.backtest.price_matrix import PriceMatrix, simulate_daily
from quant_pipeline.core.backtest.reference_engine import BacktestInputError
from quant_pipeline.core.backtest.share_simulation import TradingModel, simulate
from quant_pipeline.core.data import curation as curate
from quant_pipeline.core.data.calendar import rebalance_dates, trading_days
from quant_pipeline.core.factors.values import factor_values
from quant_pipeline.core.research.sweeps import variant_weights
from quant_pipeline.sources.demo import generate_market
from quant_pipeline_tests.core.backtest.test_reference_engine import (
    D,
    make_prices,
    make_weights,
    random_market,
)
from quant_pipeline_tests.core.backtest.test_share_simulation import with_returns

UNITLESS = ("portfolio_return", "benchmark_return", "equity", "benchmark_equity", "drawdown",
            "turnover", "costs")  # fmt: skip
CURRENCY = ("portfolio_value", "cash", "fees", "slippage")
MODELS = {
    "IB whole shares, 10 bps slippage": TradingModel(
        capital=20_000.0, commission=CommissionModel(slippage_bps=10.0)
    ),
    "free fractional": TradingModel.free(capital=12_345.0),
    "band, minimum order, cash rate": TradingModel(
        capital=50_000.0, tolerance_band=0.2, min_trade_value=200.0, cash_rate=0.03
    ),
    "slots (held names kept)": TradingModel(capital=30_000.0, resize_held=False),
}


def assert_same_daily(fast: pl.DataFrame, full: pl.DataFrame, rebalance_days: list) -> None:
    """Every column of ``simulate(...).daily``: unitless ones within 1e-12, currency within
    1e-12 of the account value, dates and order counts exactly; on rebalance days (the
    account the orders are sized from) the account value is bit for bit the same."""
    assert fast.columns == full.columns
    assert fast["date"].to_list() == full["date"].to_list()
    assert fast["orders"].to_list() == full["orders"].to_list()
    for column in UNITLESS:
        gap = (fast[column] - full[column]).abs().max()
        assert gap <= 1e-12, f"{column} differs by {gap}"
    scale = full["portfolio_value"].abs().max()
    for column in CURRENCY:
        gap = (fast[column] - full[column]).abs().max()
        assert gap <= 1e-12 * scale, f"{column} differs by {gap} (account up to {scale})"
    on = pl.col("date").is_in(pl.Series(rebalance_days).implode())
    assert fast.filter(on)["portfolio_value"].equals(full.filter(on)["portfolio_value"])


@pytest.mark.parametrize("model", list(MODELS), ids=list(MODELS))
@pytest.mark.parametrize(("seed", "delisting_return"), [(1, None), (2, -0.3), (3, None)])
def test_the_fast_path_equals_the_full_simulation_on_random_markets(seed, delisting_return, model):
    # delisting (T3 stops at day 150 while held), a late listing, missing days, cash left over
    prices, weights = random_market(seed)
    prices = with_returns(prices)
    full = simulate(weights, prices, MODELS[model], delisting_return=delisting_return).daily
    fast = simulate_daily(
        weights, PriceMatrix.from_prices(prices), MODELS[model], delisting_return=delisting_return
    )
    assert_same_daily(fast, full, weights["rebalance_date"].unique().to_list())


@pytest.fixture(scope="module")
def demo():
    """A 150-ticker demo market (2014-2019), factors.values on monthly dates, and the shipped
    multifactor_smallcap sweep."""
    market = generate_market(150, date(2014, 1, 1), date(2019, 12, 31), seed=7)
    prices = curate.curate_prices(market.prices, market.corporate_actions).prices
    monthly = rebalance_dates(trading_days(prices), "monthly")
    values = factor_values(
        prices,
        curate.curate_fundamentals(market.fundamentals),
        curate.curate_securities(market.securities),
        monthly,
        curate.curate_membership(market.membership),
    )
    schedules = {
        "monthly": monthly,
        "quarterly": rebalance_dates(trading_days(prices), "quarterly"),
    }
    sweep = load_sweep(SWEEPS_DIR / "multifactor_smallcap.yaml")
    return prices, values, schedules, sweep


# monthly and quarterly, equal and inverse-volatility, 10 and 50 names, with and without a cap
DEMO_VARIANTS = ("__v000", "__v001", "__v007", "__v054", "__v143")


@pytest.mark.parametrize("suffix", DEMO_VARIANTS)
def test_the_fast_path_equals_the_full_simulation_on_the_demo_for_sweep_variants(demo, suffix):
    prices, values, schedules, sweep = demo
    variant = next(v for v in sweep.variants if v.name.endswith(suffix))
    dates = [d for d in schedules[variant.spec.rebalance] if d in set(values["rebalance_date"])]
    weights = variant_weights(variant, values, dates, {})
    model = TradingModel.from_settings(slippage_bps=10.0, tolerance_band=0.2, min_trade_value=None)
    matrix = PriceMatrix.from_prices(prices)
    for delisting_return in (None, -0.5):
        full = simulate(weights, prices, model, delisting_return=delisting_return).daily
        fast = simulate_daily(weights, matrix, model, delisting_return=delisting_return)
        assert_same_daily(fast, full, dates)
    assert full["orders"].sum() > 2 * len(dates)  # a book that trades, not an empty one


def test_a_matrix_restricted_to_the_held_names_gives_the_same_days(demo):
    prices, values, schedules, sweep = demo
    weights = variant_weights(sweep.variants[0], values, schedules["monthly"], {})
    everything = simulate_daily(weights, PriceMatrix.from_prices(prices))
    held = PriceMatrix.from_prices(prices, tickers=weights["ticker"].unique().to_list())
    assert held.tickers.size < prices["ticker"].n_unique()
    assert simulate_daily(weights, held).equals(everything)


def test_the_matrix_holds_the_last_valid_price_and_the_day_it_is_from():
    # A: no row on d3, a NaN adjusted close on d4; B lists on d2
    prices = make_prices({"A": [10.0, 11.0, None, 12.0, 13.0], "B": [None, 20.0, 21.0, 22.0, 23.0]})
    prices = prices.with_columns(
        pl.when((pl.col("ticker") == "A") & (pl.col("date") == D[3]))
        .then(float("nan"))
        .otherwise(pl.col("adj_close"))
        .alias("adj_close")
    )
    bench = pl.DataFrame({"date": D[:5], "benchmark_return": [0.0, 0.01, None, 0.02, 0.03]})
    m = PriceMatrix.from_prices(prices, bench)
    assert m.tickers.tolist() == ["A", "B"]
    assert m.row[:, 0].tolist() == [0, 1, 1, 1, 4] and m.row[:, 1].tolist() == [-1, 1, 2, 3, 4]
    close, eff, seen = m.asof(np.arange(5), np.zeros(5, dtype=int))
    assert eff.tolist() == [10.0, 11.0, 11.0, 11.0, 13.0] and seen.tolist() == [0, 1, 1, 1, 4]
    assert np.isnan(m.asof(np.array([0]), np.array([1]))[0][0])
    assert m.last_own.tolist() == [4, 4]
    assert m.benchmark.tolist() == [0.0, 0.01, 0.0, 0.02, 0.03]


def test_the_fast_path_rejects_what_the_simulation_rejects():
    prices = make_prices({"A": [10.0, 11.0, 12.0], "B": [5.0, 5.0, 5.0]})
    bench = pl.DataFrame({"date": D[:3], "benchmark_return": [0.0, 0.0, 0.0]})
    matrix = PriceMatrix.from_prices(prices, bench)
    off_day = make_weights([(date(2024, 1, 20), "A", 1.0)])
    with pytest.raises(BacktestInputError, match="not trading days"):
        simulate_daily(off_day, matrix)
    with pytest.raises(BacktestInputError, match="sum to more than 1"):
        simulate_daily(make_weights([(D[0], "A", 0.7), (D[0], "B", 0.7)]), matrix)
    with pytest.raises(BacktestInputError, match="duplicated"):
        PriceMatrix.from_prices(pl.concat([prices, prices.head(1)]), bench)
    with pytest.raises(BacktestInputError, match="adj_close <= 0"):
        PriceMatrix.from_prices(prices.with_columns(pl.col("adj_close") - 10.0), bench)

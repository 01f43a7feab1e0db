"""Delisting proceeds: a holding whose prices stop is closed at its last price (times the
configured delisting return) and the proceeds sit in cash; the trade says 'delisted'."""

import polars as pl
import pytest

from quant_pipeline.core.backtest.reference_engine import run_backtest
from quant_pipeline_tests.core.backtest.test_reference_engine import (
    ZERO_BENCH,
    D,
    make_prices,
    make_weights,
)

# A: 10, 11, 12 then no more prices (delisted after d3). B: constant 20. One rebalance at d1.
PRICES = make_prices({"A": [10, 11, 12, None, None, None], "B": [20, 20, 20, 20, 20, 20]})
WEIGHTS = make_weights([(D[0], "A", 0.5), (D[0], "B", 0.5)])


def test_delisting_return_reduces_the_proceeds_which_then_earn_nothing():
    result = run_backtest(WEIGHTS, PRICES, benchmark=ZERO_BENCH, delisting_return=-0.3)
    # Level: d1 1.0; d2 0.5*11/10 + 0.5 = 1.05; d3 A closes at 12 * (1 - 0.3) = 8.4:
    # 0.5*8.4/10 + 0.5 = 0.92; d4..d6 A's proceeds are frozen and B is flat: 0.92.
    assert result.daily["equity"].to_list() == pytest.approx(
        [1.0, 1.05, 0.92, 0.92, 0.92, 0.92], abs=1e-12
    )
    trade = result.trades.filter(pl.col("ticker") == "A")
    # No later rebalance: the trade is not 'open' but exits where the prices stop.
    assert trade.select("exit_date", "exit_price", "return", "exit_reason").row(0) == (
        D[2],
        12.0,  # the last traded close; the delisting return is in `return`: 8.4/10 - 1
        pytest.approx(-0.16, abs=1e-12),
        "delisted",
    )


def test_without_a_delisting_return_the_holding_is_closed_at_its_last_price():
    result = run_backtest(WEIGHTS, PRICES, benchmark=ZERO_BENCH)
    # d3: 0.5*12/10 + 0.5 = 1.1, then frozen: never forward-filled beyond the last price.
    assert result.daily["equity"].to_list() == pytest.approx(
        [1.0, 1.05, 1.1, 1.1, 1.1, 1.1], abs=1e-12
    )
    reasons = dict(result.trades.select("ticker", "exit_reason").iter_rows())
    assert reasons == {"A": "delisted", "B": "open"}

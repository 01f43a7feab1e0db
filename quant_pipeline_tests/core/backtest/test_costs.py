import math

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quant_pipeline.core.backtest.costs import CommissionModel, TradingCostError

IB = CommissionModel()


def test_no_shares_costs_nothing():
    assert IB.fee(0, 123.0) == 0.0


def test_small_order_pays_the_one_dollar_minimum():
    # 100 x $0.005 = $0.50 < $1 minimum; cap 1% x $2,000 = $20 does not bind
    assert IB.fee(100, 20.0) == pytest.approx(1.0)


def test_large_order_pays_per_share():
    # 1,000 x $0.005 = $5.00, between $1 and 1% x $20,000 = $200
    assert IB.fee(1_000, 20.0) == pytest.approx(5.0)


def test_cheap_stock_order_is_capped_at_one_percent_of_value():
    # 10,000 x $0.005 = $50 > cap 1% x (10,000 x $0.30) = $30
    assert IB.fee(10_000, 0.30) == pytest.approx(30.0)


def test_cap_wins_over_minimum_for_a_tiny_order():
    # 1 share at $50: minimum $1 but cap 1% x $50 = $0.50, and the cap wins (as at IB)
    assert IB.fee(1, 50.0) == pytest.approx(0.5)


def test_sells_pay_the_same_fee_as_buys():
    assert IB.fee(-1_000, 20.0) == IB.fee(1_000, 20.0)


def test_bps_charge_adds_to_per_share_before_bounds():
    model = CommissionModel(per_share=0.0, minimum=0.0, maximum_pct=math.inf, bps=10.0)
    # 10 bps of 100 x $50 = $5,000 -> $5
    assert model.fee(100, 50.0) == pytest.approx(5.0)


def test_free_model_charges_nothing():
    assert CommissionModel.free().fee(12_345, 67.0) == 0.0


def test_fee_expr_matches_fee_row_by_row():
    frame = pl.DataFrame(
        {
            "q": [0.0, 1.0, 100.0, 1_000.0, 10_000.0, -300.0, None],
            "p": [10.0, 50.0, 20.0, 20.0, 0.30, 5.0, 1.0],
        }
    )
    got = frame.select(IB.fee_expr("q", "p"))
    # hand: 0; cap 0.50; min 1.00; 5.00; cap 30.00; 300 x 0.005 = 1.50; null
    expected = pl.DataFrame({"fee": [0.0, 0.5, 1.0, 5.0, 30.0, 1.5, None]})
    assert_frame_equal(got, expected)


def test_fees_vectorised_matches_scalar_on_random_orders():
    rng = np.random.default_rng(7)
    shares = rng.integers(-5_000, 5_000, 200).astype(float)
    prices = rng.uniform(0.1, 500, 200)
    vector = IB.fees(shares, prices)
    scalar = [IB.fee(q, p) for q, p in zip(shares, prices, strict=True)]
    assert np.allclose(vector, scalar)
    expr = pl.DataFrame({"q": shares, "p": prices}).select(IB.fee_expr("q", "p"))["fee"]
    assert np.allclose(expr.to_numpy(), vector)


def test_slippage_makes_buys_dearer_and_sells_cheaper():
    model = CommissionModel(slippage_bps=10.0)
    assert model.execution_price(100.0, 5) == pytest.approx(100.1)
    assert model.execution_price(100.0, -5) == pytest.approx(99.9)
    assert model.execution_price(100.0, 0) == pytest.approx(100.0)
    got = pl.DataFrame({"p": [100.0, 100.0], "q": [5.0, -5.0]}).select(
        model.execution_price_expr("p", "q")
    )
    assert_frame_equal(got, pl.DataFrame({"execution_price": [100.1, 99.9]}))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"per_share": -0.01},
        {"minimum": float("nan")},
        {"maximum_pct": -1.0},
        {"bps": float("inf")},
        {"slippage_bps": 10_000.0},
    ],
)
def test_bad_parameters_are_rejected_when_the_model_is_built(kwargs):
    with pytest.raises(TradingCostError, match=next(iter(kwargs))):
        CommissionModel(**kwargs)

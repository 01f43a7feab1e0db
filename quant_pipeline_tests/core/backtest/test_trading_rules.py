"""When the simulated account places an order: tolerance band, minimum trade value, held names kept.

Hand-computed accounts with no commission and fractional shares, so each number is arithmetic
on the prices below (close = adjusted close).
"""

from __future__ import annotations

import pytest

from quant_pipeline.core.backtest.costs import CommissionModel
from quant_pipeline.core.backtest.reference_engine import BacktestInputError
from quant_pipeline.core.backtest.share_simulation import (
    REASON_MIN_VALUE,
    TradingModel,
    commission_aware_minimum,
    simulate,
)
from quant_pipeline_tests.core.backtest.test_reference_engine import D, make_prices, make_weights
from quant_pipeline_tests.core.backtest.test_share_simulation import ZERO


def free(**rules) -> TradingModel:
    return TradingModel(capital=900.0, fractional=True, commission=CommissionModel.free(), **rules)


# d1: A, B, C at 10, one third each of $900 -> 30 shares each. d3: A at 16 (480), B and C at 10
# (300 each); V = 1,080, each target 360. A is 120 over (33% of its target), B and C 60 under
# (16.7%).
THIRDS = make_prices(
    {"A": [10.0, 13.0, 16.0, 16.0], "B": [10.0] * 4, "C": [10.0] * 4, "E": [20.0] * 4}
)
THIRDS_WEIGHTS = make_weights(
    [(d, t, 1 / 3) for d in (D[0], D[2]) for t in ("A", "B", "C")],
)


def orders_on(result, day) -> list[tuple[str, float]]:
    fills = result.fills.filter(result.fills["rebalance_date"] == day).sort("ticker")
    return [(t, round(q, 9)) for t, q in fills.select("ticker", "shares").rows()]


def test_without_rules_every_name_is_resized_to_its_target():
    result = simulate(THIRDS_WEIGHTS, THIRDS, free(), benchmark=ZERO)
    # A sells 120 / 16 = 7.5 shares; B and C buy 60 / 10 = 6 shares.
    assert orders_on(result, D[2]) == [("A", -7.5), ("B", 6.0), ("C", 6.0)]


def test_names_inside_the_tolerance_band_get_no_order():
    result = simulate(THIRDS_WEIGHTS, THIRDS, free(tolerance_band=0.2), benchmark=ZERO)
    # Band 20% of 360 = 72: A (120 off) is outside and sold back to 360; B, C (60 off) stay.
    assert orders_on(result, D[2]) == [("A", -7.5)]
    day3 = result.daily.filter(result.daily["date"] == D[2]).row(0, named=True)
    assert day3["cash"] == pytest.approx(120.0)
    assert day3["portfolio_value"] == pytest.approx(1_080.0)
    assert day3["turnover"] == pytest.approx(120.0 / 1_080.0)
    assert result.daily["orders"].to_list() == [3, 0, 1, 0]


def test_a_band_narrower_than_every_drift_resizes_every_name():
    result = simulate(THIRDS_WEIGHTS, THIRDS, free(tolerance_band=0.1), benchmark=ZERO)
    # 60 / 360 = 16.7% > 10%: all three trade, as with no band.
    assert orders_on(result, D[2]) == [("A", -7.5), ("B", 6.0), ("C", 6.0)]


def test_orders_below_the_minimum_trade_value_are_dropped_but_an_exit_is_always_placed():
    result = simulate(THIRDS_WEIGHTS, THIRDS, free(min_trade_value=100.0), benchmark=ZERO)
    # A's sale is worth 120 (placed); B's and C's buys 60 each (dropped).
    assert orders_on(result, D[2]) == [("A", -7.5)]
    exit_a = make_weights(
        [(D[0], t, 1 / 3) for t in ("A", "B", "C")] + [(D[2], "B", 0.5), (D[2], "C", 0.5)]
    )
    falling = make_prices({"A": [10.0, 8.0, 5.0, 5.0], "B": [10.0] * 4, "C": [10.0] * 4})
    result = simulate(exit_a, falling, free(min_trade_value=250.0), benchmark=ZERO)
    # d1 buys 300 of each (>= 250). d3: A is no longer wanted: its 30 shares are sold though
    # worth 150 < 250; V = 750, B and C would buy 375 - 300 = 75 each, below the minimum.
    assert orders_on(result, D[0]) == [("A", 30.0), ("B", 30.0), ("C", 30.0)]
    assert orders_on(result, D[2]) == [("A", -30.0)]


def test_a_new_name_below_the_minimum_is_listed_as_not_bought():
    weights = make_weights([(D[0], "A", 0.9), (D[0], "E", 0.1)])
    result = simulate(weights, THIRDS, free(min_trade_value=100.0), benchmark=ZERO)
    # E's target is 0.1 * 900 = 90 < 100: not bought; A buys 810 / 10 = 81 shares.
    assert orders_on(result, D[0]) == [("A", 81.0)]
    short = result.unaffordable.row(0, named=True)
    assert (short["ticker"], short["reason"]) == ("E", REASON_MIN_VALUE)
    assert short["target_shares"] == pytest.approx(4.5)  # 90 / 20
    assert short["shortfall_value"] == pytest.approx(90.0)


# d1: A and B half of $900 each at 10 (45 shares). d3: A at 12 (540), B at 8 (360), V = 900.
HOLD = make_prices({"A": [10.0, 11.0, 12.0, 12.0], "B": [10.0, 9.0, 8.0, 8.0], "E": [20.0] * 4})


def test_kept_names_are_not_touched_and_a_new_name_gets_the_exits_cash():
    weights = make_weights([(D[0], "A", 0.5), (D[0], "B", 0.5), (D[2], "A", 0.5), (D[2], "E", 0.5)])
    result = simulate(weights, HOLD, free(resize_held=False), benchmark=ZERO)
    # B exits for 360; A (540, target 450) is kept as it is; E's target is 450 but only the
    # freed 360 is there: 360 / 20 = 18 shares.
    assert orders_on(result, D[2]) == [("B", -45.0), ("E", 18.0)]
    held = result.positions.filter(result.positions["rebalance_date"] == D[2]).sort("ticker")
    assert held.select("ticker", "shares").rows() == [("A", 45.0), ("E", 18.0)]
    assert result.daily["cash"][2] == pytest.approx(0.0)
    # With resizing A would be sold down to 450 and E bought for 450.
    resized = simulate(weights, HOLD, free(), benchmark=ZERO)
    assert orders_on(resized, D[2]) == [("A", -7.5), ("B", -45.0), ("E", 22.5)]


def test_several_new_names_split_the_freed_cash_by_target_weight_up_to_their_targets():
    weights = make_weights(
        [(D[0], "A", 0.5), (D[0], "B", 0.5)]
        + [(D[2], "A", 0.5), (D[2], "E", 0.3), (D[2], "C", 0.1)]
    )
    prices = make_prices(
        {
            "A": [10.0, 11.0, 12.0, 12.0],
            "B": [10.0, 9.0, 8.0, 8.0],
            "C": [10.0] * 4,
            "E": [20.0] * 4,
        }
    )
    result = simulate(weights, prices, free(resize_held=False), benchmark=ZERO)
    # 360 freed by B: E's share 360 * 0.3 / 0.4 = 270 (target 0.3 * 900 = 270) -> 13.5 shares;
    # C's share 90 (target 90) -> 9 shares. A is kept.
    assert orders_on(result, D[2]) == [("B", -45.0), ("C", 9.0), ("E", 13.5)]


def test_the_commission_aware_minimum_is_the_order_whose_minimum_commission_is_half_a_percent():
    assert commission_aware_minimum(CommissionModel()) == pytest.approx(200.0)  # $1 / 0.5%
    assert commission_aware_minimum(CommissionModel.free()) == 0.0
    model = TradingModel.from_settings(min_trade_value=None, commission_minimum=2.5)
    assert model.min_trade_value == pytest.approx(500.0)
    assert TradingModel.from_settings(min_trade_value=50.0).min_trade_value == 50.0


@pytest.mark.parametrize(
    "rules",
    [{"tolerance_band": -0.1}, {"min_trade_value": float("nan")}, {"tolerance_band": True}],
)
def test_a_negative_or_non_numeric_rule_is_refused_with_its_name(rules):
    with pytest.raises(BacktestInputError, match=next(iter(rules))):
        TradingModel(**rules)

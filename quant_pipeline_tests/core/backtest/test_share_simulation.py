"""Share-based simulation: a hand-computed account, cash rules, the weights engine reproduced."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quant_pipeline.core.backtest.costs import CommissionModel
from quant_pipeline.core.backtest.reference_engine import BacktestInputError, run_backtest
from quant_pipeline.core.backtest.share_simulation import (
    REASON_NO_PRICE,
    REASON_PRICE,
    SIM_DAILY_SCHEMA,
    TradingModel,
    affordable_shares,
    buy_within_cash,
    simulate,
    unfilled_targets,
)
from quant_pipeline_tests.core.backtest.test_reference_engine import (
    D,
    make_prices,
    make_weights,
    random_market,
)

IB_10BPS = TradingModel(capital=10_000.0, commission=CommissionModel(slippage_bps=10.0))
ZERO = pl.DataFrame({"date": D, "benchmark_return": [0.0] * len(D)})


def with_returns(prices: pl.DataFrame) -> pl.DataFrame:
    return prices.sort("ticker", "date").with_columns(
        pl.col("adj_close").pct_change().over("ticker").alias("daily_return")
    )


# The hand-computed account: $10,000, whole shares, IB fixed commissions ($0.005/share, $1 min,
# 1% max), slippage 10 bps (s = 0.001). Close = adjusted close.
#        d1     d2     d3
# A      0.40   0.42   0.44
# B      6000   6100   5000
# Targets: d1 A 50% B 50%; d3 A 50% B 50%.
HAND_PRICES = make_prices({"A": [0.40, 0.42, 0.44], "B": [6000.0, 6100.0, 5000.0]})
HAND_WEIGHTS = make_weights(
    [(D[0], "A", 0.5), (D[0], "B", 0.5), (D[2], "A", 0.5), (D[2], "B", 0.5)],
    sectors={"A": "Energy", "B": "Materials"},
)


@pytest.fixture(scope="module")
def hand():
    return simulate(HAND_WEIGHTS, HAND_PRICES, IB_10BPS, benchmark=ZERO)


def test_hand_account_first_rebalance_hits_the_commission_cap_and_reports_the_dear_share(hand):
    # d1, V = 10,000. First pass: A wants 5,000 / 0.40 = 12,500 shares; commission
    # min(max(0.005 * 12,500 = 62.50, 1), 1% * 5,000 = 50) = 50 (the cap); slippage
    # 12,500 * 0.40 * 0.001 = 5; B wants 5,000 / 6,000 = 0.83 share -> 0. Reserve 55.
    # Second pass on 9,945: A wants 4,972.50 / 0.40 = 12,431.25 -> 12,431 shares.
    # Commission min(62.155, 1% * 4,972.40 = 49.724) = 49.724; slippage 4.9724.
    # Cash 10,000 - 12,431 * 0.4004 - 49.724 = 4,972.9036 (B's half stays in cash).
    fills = hand.fills.filter(pl.col("rebalance_date") == D[0])
    assert fills.select("ticker", "side", "shares").rows() == [("A", "BUY", 12_431.0)]
    assert fills["execution_price"][0] == pytest.approx(0.4004)
    assert fills["commission"][0] == pytest.approx(49.724)
    assert fills["slippage"][0] == pytest.approx(4.9724)
    day1 = hand.daily.row(0, named=True)
    assert day1["cash"] == pytest.approx(4_972.9036)
    assert day1["portfolio_value"] == pytest.approx(9_945.3036)  # 4,972.9036 + 12,431 * 0.40
    assert day1["fees"] == pytest.approx(49.724)
    assert day1["slippage"] == pytest.approx(4.9724)
    assert day1["costs"] == pytest.approx(54.6964 / 10_000)
    assert day1["portfolio_return"] == pytest.approx(-54.6964 / 10_000)
    assert day1["turnover"] == pytest.approx(4_972.4 / 10_000)
    # B: one share (6,000) costs more than its target value 0.5 * 9,945 = 4,972.50.
    short = hand.unaffordable.row(0, named=True)
    assert (short["rebalance_date"], short["ticker"], short["reason"]) == (D[0], "B", REASON_PRICE)
    assert short["target_shares"] == pytest.approx(4_972.5 / 6_000)
    assert short["shares"] == 0.0
    assert short["shortfall_value"] == pytest.approx(4_972.5)


def test_hand_account_second_rebalance_sells_first_then_buys_at_the_commission_minimum(hand):
    # d2: 4,972.9036 + 12,431 * 0.42 = 10,193.9236, no trade.
    # d3 before trading: V = 4,972.9036 + 12,431 * 0.44 = 10,442.5436.
    # First pass: A wants 5,221.2718 / 0.44 = 11,866.53 -> sell ceil(564.47) = 565
    # (commission min(2.825, 1% * 248.60 = 2.486) = 2.486, slippage 0.2486); B wants
    # 1.04 -> buy 1 (commission max(0.005, 1) = 1, the minimum; slippage 5). Reserve 8.7346.
    # Second pass on 10,433.809: A wants 11,856.60 -> sell ceil(574.40) = 575 shares:
    # commission min(2.875, 1% * 253.00 = 2.53) = 2.53, slippage 0.253, proceeds
    # 575 * 0.43956 - 2.53 = 250.217; B wants 1.04 -> buy 1 at 5,005 + 1 commission.
    # Cash 4,972.9036 + 250.217 - 5,006 = 217.1206 left over.
    fills = hand.fills.filter(pl.col("rebalance_date") == D[2])
    assert fills.select("ticker", "side", "shares", "shares_after").rows() == [
        ("A", "SELL", -575.0, 11_856.0),
        ("B", "BUY", 1.0, 1.0),
    ]
    assert fills["commission"].to_list() == pytest.approx([2.53, 1.0])
    assert fills["slippage"].to_list() == pytest.approx([0.253, 5.0])
    assert fills["value"].to_list() == pytest.approx([-575 * 0.43956, 5_005.0])
    day2, day3 = hand.daily.row(1, named=True), hand.daily.row(2, named=True)
    assert day2["portfolio_value"] == pytest.approx(10_193.9236)
    assert day2["portfolio_return"] == pytest.approx(10_193.9236 / 9_945.3036 - 1)
    assert day3["cash"] == pytest.approx(217.1206)
    # 217.1206 + 11,856 * 0.44 + 5,000 = 10,442.5436 - (2.53 + 1) - (0.253 + 5)
    assert day3["portfolio_value"] == pytest.approx(10_433.7606)
    assert day3["fees"] == pytest.approx(3.53)
    assert day3["slippage"] == pytest.approx(5.253)
    assert day3["turnover"] == pytest.approx((575 * 0.44 + 5_000) / 10_442.5436)
    assert day3["costs"] == pytest.approx(8.783 / 10_442.5436)
    assert day3["equity"] == pytest.approx(1.04337606)
    positions = hand.positions.filter(pl.col("rebalance_date") == D[2])
    assert positions.select("ticker", "shares", "value").rows() == [
        ("A", 11_856.0, pytest.approx(5_216.64)),
        ("B", 1.0, 5_000.0),
    ]
    assert positions["weight"].to_list() == pytest.approx(
        [5_216.64 / 10_433.7606, 5_000 / 10_433.7606]
    )


def test_hand_account_trades_carry_every_order_cost_of_the_spell(hand):
    a = hand.trades.filter(pl.col("ticker") == "A").row(0, named=True)
    assert (a["entry_date"], a["exit_date"], a["entry_price"], a["shares"]) == (
        D[0],
        None,
        0.40,
        12_431.0,
    )
    assert a["return"] == pytest.approx(0.1)  # 0.44 / 0.40 - 1, marked at the end
    assert a["commission"] == pytest.approx(49.724 + 2.53)
    assert a["slippage"] == pytest.approx(4.9724 + 0.253)
    # fees as a fraction of the entry value 12,431 * 0.40 = 4,972.40
    assert a["fees"] == pytest.approx((49.724 + 2.53 + 4.9724 + 0.253) / 4_972.4)
    b = hand.trades.filter(pl.col("ticker") == "B").row(0, named=True)
    assert (b["entry_date"], b["shares"], b["commission"], b["slippage"]) == (D[2], 1.0, 1.0, 5.0)


def test_daily_has_the_weights_engine_columns_plus_cash_and_fees(hand):
    assert hand.daily.schema == pl.Schema(SIM_DAILY_SCHEMA)
    first = hand.daily.row(0, named=True)
    assert first["benchmark_return"] == 0.0 and first["benchmark_equity"] == 1.0
    # Value bookkeeping: equity is the account value over the capital.
    assert (hand.daily["equity"] * 10_000 - hand.daily["portfolio_value"]).abs().max() < 1e-9


def test_buys_that_do_not_fit_are_cut_to_the_shares_the_cash_left_pays():
    # Cash 1,000. A: 10 @ 50 = 500 + $1 commission -> fits, 499 left. B: 10 @ 60 = 601 does
    # not fit; 8 shares cost 480 + 1 = 481 <= 499, 9 would cost 541. C: 1 @ 10 -> 11 <= 18 left.
    bought = buy_within_cash(
        np.array([10.0, 10.0, 1.0]), np.array([50.0, 60.0, 10.0]), 1_000.0, CommissionModel(), True
    )
    assert bought.tolist() == [10.0, 8.0, 1.0]
    # With a $5 minimum and no cap: 4 @ 9 would cost 36 + 5 = 41 > 40; 3 cost 27 + 5 = 32.
    bought = buy_within_cash(
        np.array([4.0]),
        np.array([9.0]),
        40.0,
        CommissionModel(minimum=5.0, maximum_pct=math.inf),
        True,
    )
    assert bought.tolist() == [3.0]


def test_the_cost_reserve_makes_room_for_a_large_minimum_commission():
    # $1,000, whole shares, $20 minimum commission, no cap.
    # d1: A 100% at 100: first pass 10 shares (reserve 20); second pass on 980 -> 9.8 -> 9
    # shares for 900 + 20; cash 80.
    # d2 (A 100, B 30), A 50% B 50%: V = 80 + 900 = 980. First pass: sell A ceil(9 - 4.9) = 5,
    # buy B floor(16.33) = 16 -> reserve 40. Second pass on 940: sell A ceil(9 - 4.7) = 5,
    # buy B floor(15.67) = 15. Cash 80 + 500 - 20 = 560, then B 450 + 20 -> 90 left.
    prices = make_prices({"A": [100.0, 100.0], "B": [30.0, 30.0]})
    weights = make_weights([(D[0], "A", 1.0), (D[1], "A", 0.5), (D[1], "B", 0.5)])
    model = TradingModel(
        capital=1_000.0, commission=CommissionModel(minimum=20.0, maximum_pct=math.inf)
    )
    result = simulate(weights, prices, model, benchmark=ZERO)
    assert result.fills.select("rebalance_date", "ticker", "shares").rows() == [
        (D[0], "A", 9.0),
        (D[1], "A", -5.0),
        (D[1], "B", 15.0),
    ]
    assert result.daily["cash"].to_list() == pytest.approx([80.0, 90.0])
    assert result.unaffordable.is_empty()


def test_affordable_shares_is_the_largest_quantity_within_the_budget_at_each_commission_bound():
    model = CommissionModel(slippage_bps=10.0)
    # Minimum bound: 100 @ 10 -> 10.01 per share; 1,000 buys (1,000 - 1) / 10.01 = 99.8 -> 99.
    # Cap bound: price 0.40 -> 0.4004 paid + 0.004 commission (1% cap) per share; 100 buys
    # 100 / 0.4044 = 247.3 -> 247 (247 * 0.4004 + min(1.235, 0.988) = 99.887; 248 would cost
    # 99.299 + 0.992 = 100.291).
    # Per-share regime: price 100, budget 100,000: 100,000 / (100.1 + 0.005) = 998.95 -> 998.
    q = affordable_shares(
        np.array([1_000.0, 100.0, 100_000.0]), np.array([10.0, 0.4, 100.0]), model, True
    )
    assert q.tolist() == [99.0, 247.0, 998.0]
    fractional = affordable_shares(np.array([1_000.0]), np.array([10.0]), model, False)
    assert fractional[0] == pytest.approx(999 / 10.01)


@pytest.mark.parametrize("seed", range(5))
def test_affordable_shares_never_exceeds_the_budget_and_one_more_share_would(seed):
    rng = np.random.default_rng(seed)
    budget = rng.uniform(0, 5_000, 200)
    price = np.exp(rng.uniform(np.log(0.05), np.log(2_000), 200))
    model = CommissionModel(
        per_share=rng.uniform(0, 0.02), minimum=rng.uniform(0, 5), slippage_bps=rng.uniform(0, 50)
    )
    q = affordable_shares(budget, price, model, True)
    cost = q * price * (1 + model.slippage) + model.fees(q, price)
    assert (cost <= budget + 1e-9).all()
    more = q + 1
    assert (more * price * (1 + model.slippage) + model.fees(more, price) > budget).all()


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_whole_shares_never_spend_more_than_the_cash(seed):
    prices, weights = random_market(seed)
    rng = np.random.default_rng(seed)
    model = TradingModel(
        capital=float(rng.uniform(500, 5_000)),
        commission=CommissionModel(minimum=float(rng.uniform(0, 5)), slippage_bps=25.0),
    )
    result = simulate(weights, prices, model, benchmark=ZERO)
    assert result.daily["cash"].min() >= 0.0
    # close / adj_close is constant in this market, so whole orders keep whole holdings.
    assert (result.fills["shares"] == result.fills["shares"].round()).all()
    assert (result.positions["shares"] == result.positions["shares"].round()).all()
    # Cash bookkeeping on every rebalance day: buys and sells at execution prices, fees paid.
    flows = result.fills.group_by("rebalance_date").agg(
        (-pl.col("value") - pl.col("commission")).sum().alias("flow")
    )
    daily = result.daily.with_columns(pl.col("cash").shift(1, fill_value=model.capital).alias("c0"))
    check = daily.join(flows, left_on="date", right_on="rebalance_date")
    assert (check["c0"] + check["flow"] - check["cash"]).abs().max() < 1e-6


@pytest.mark.parametrize(("seed", "delisting_return"), [(1, None), (2, -0.3), (3, None)])
def test_free_fractional_trading_reproduces_the_weights_engine_exactly(seed, delisting_return):
    prices, weights = random_market(seed)
    prices = with_returns(prices)
    expected = run_backtest(weights, prices, delisting_return=delisting_return, strategy="s")
    result = simulate(
        weights,
        prices,
        TradingModel.free(capital=12_345.0),
        delisting_return=delisting_return,
        strategy="s",
    )
    assert_frame_equal(
        result.daily.select(expected.daily.columns), expected.daily, abs_tol=1e-10, rel_tol=0
    )
    assert_frame_equal(
        result.trades.select(expected.trades.columns), expected.trades, abs_tol=1e-10, rel_tol=0
    )
    assert_frame_equal(result.unfilled, expected.unfilled)
    assert result.daily["fees"].sum() == 0.0 and result.daily["slippage"].sum() == 0.0


def test_cash_earns_the_configured_rate_compounded_per_trading_day():
    # Half in A (flat at 10), half in cash at 5% a year: cash after n days 500 * 1.05^(n/252).
    prices = make_prices({"A": [10.0] * 5})
    weights = make_weights([(D[0], "A", 0.5)])
    model = TradingModel(capital=1_000.0, commission=CommissionModel.free(), cash_rate=0.05)
    result = simulate(weights, prices, model, benchmark=ZERO)
    expected = [500 + 500 * 1.05 ** (n / 252) for n in range(5)]
    assert result.daily["portfolio_value"].to_list() == pytest.approx(expected, rel=1e-12)


def test_targets_without_a_price_and_unaffordable_ones_are_listed_together(hand):
    prices = make_prices({"A": [10.0] * 8, "C": [None] * 8})
    weights = make_weights([(D[7], "A", 0.5), (D[7], "C", 0.5)])
    result = simulate(weights, prices, TradingModel(capital=1_000.0), benchmark=ZERO, strategy="s")
    table = unfilled_targets(result)
    assert table.select("strategy", "ticker", "reason", "shares").rows() == [
        ("s", "C", REASON_NO_PRICE, 0.0)
    ]
    merged = unfilled_targets(hand)
    assert merged["reason"].to_list() == [REASON_PRICE]


def test_bad_trading_settings_are_rejected_with_the_rule():
    with pytest.raises(BacktestInputError, match="capital must be positive"):
        TradingModel(capital=0.0)
    with pytest.raises(BacktestInputError, match="cash_rate must be > -1"):
        TradingModel(cash_rate=-1.5)


def test_settings_build_the_model_and_a_negative_cap_means_no_cap():
    model = TradingModel.from_settings(capital=5_000, commission_maximum_pct=-1, slippage_bps=3)
    assert model.capital == 5_000.0 and not model.fractional
    assert math.isinf(model.commission.maximum_pct)
    assert model.commission.slippage_bps == 3.0
    assert "whole shares" in model.describe() and "no max" in model.describe()


def test_returns_follow_the_gross_times_cost_identity(hand):
    # 1 + r_D = (1 + gross_D) * (1 - costs_D) on a rebalance day; d3's gross is 10,442.5436 /
    # 10,193.9236 - 1.
    day3 = hand.daily.row(2, named=True)
    gross = 10_442.5436 / 10_193.9236 - 1
    assert 1 + day3["portfolio_return"] == pytest.approx((1 + gross) * (1 - day3["costs"]))


def test_simulation_uses_the_equal_weight_benchmark_by_default():
    prices = with_returns(make_prices({"A": [10.0, 11.0, 12.1], "B": [10.0, 10.0, 10.0]}))
    weights = make_weights([(D[0], "A", 1.0)])
    result = simulate(weights, prices, TradingModel.free())
    # d2: mean(10%, 0%) = 5%; d3: mean(10%, 0%) = 5%; d1 is the start (0).
    assert result.daily["benchmark_return"].to_list() == pytest.approx([0.0, 0.05, 0.05])


def test_a_rebalance_to_zero_weights_sells_everything_like_the_weights_engine():
    prices = with_returns(make_prices({"A": [10, 11, 12, 15, 9]}))
    weights = make_weights([(D[0], "A", 1.0), (D[2], "A", 0.0)])
    expected = run_backtest(weights, prices, benchmark=ZERO)
    result = simulate(weights, prices, TradingModel.free(capital=1_000.0), benchmark=ZERO)
    assert_frame_equal(
        result.daily.select(expected.daily.columns), expected.daily, abs_tol=1e-12, rel_tol=0
    )
    # d3: 100 shares sold at 12; cash 1,200 from then on.
    assert result.fills.select("rebalance_date", "shares").rows() == [(D[0], 100.0), (D[2], -100.0)]
    assert result.daily["cash"].to_list() == pytest.approx([0.0, 0.0, 1_200.0, 1_200.0, 1_200.0])

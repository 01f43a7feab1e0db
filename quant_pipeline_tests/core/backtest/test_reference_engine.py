"""Backtest engine: golden examples computed by hand, invariants, and a share-based reference."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal, assert_series_equal

from quant_pipeline.core.backtest.reference_engine import (
    DAILY_SCHEMA,
    MAX_STALE_TRADING_DAYS,
    BacktestInputError,
    equal_weight_benchmark,
    quarterly_summary,
    run_backtest,
)

D = [date(2024, 1, i) for i in range(1, 11)]  # d1..d10 -> D[0]..D[9]


def make_prices(series: dict[str, list[float | None]], close_factor: dict | None = None):
    """Long prices from {ticker: adj_close per day D[0..]}; None = no row that day.

    close = adj_close * close_factor[ticker] (default 1) so tests can tell them apart.
    """
    rows = []
    for ticker, values in series.items():
        factor = (close_factor or {}).get(ticker, 1.0)
        for day, value in zip(D, values, strict=False):
            if value is not None:
                rows.append((ticker, day, value * factor, float(value)))
    frame = pl.DataFrame(
        rows,
        schema={"ticker": pl.String, "date": pl.Date, "close": pl.Float64, "adj_close": pl.Float64},
        orient="row",
    ).sort("ticker", "date")
    return frame.with_columns(pl.col("adj_close").pct_change().over("ticker").alias("daily_return"))


def make_weights(rows: list[tuple[date, str, float]], sectors: dict | None = None):
    return pl.DataFrame(
        [(d, t, (sectors or {}).get(t, "Energy"), w) for d, t, w in rows],
        schema={
            "rebalance_date": pl.Date,
            "ticker": pl.String,
            "sector": pl.String,
            "weight": pl.Float64,
        },
        orient="row",
    )


ZERO_BENCH = pl.DataFrame({"date": D, "benchmark_return": [0.0] * len(D)})

# The two-ticker example used by several tests (8 days).
#        d1  d2  d3  d4  d5  d6  d7  d8
# A      10  11  11  12  15  15  18  18
# B      20  20  18  18  20  24  24  30
TWO = make_prices(
    {
        "A": [10, 11, 11, 12, 15, 15, 18, 18],
        "B": [20, 20, 18, 18, 20, 24, 24, 30],
    },
    close_factor={"A": 2.0},
)
TWO_WEIGHTS = make_weights(
    [(D[0], "A", 0.5), (D[0], "B", 0.5), (D[4], "A", 0.25), (D[4], "B", 0.75)],
    sectors={"A": "Energy", "B": "Utilities"},
)


def test_two_ticker_rebalance_with_costs_matches_hand_computation():
    result = run_backtest(TWO_WEIGHTS, TWO, cost_bps=10.0, benchmark=ZERO_BENCH)
    # d1: buy 0.5/0.5 from cash: turnover 1.0, cost 1.0 * 10 / 1e4 = 0.001, return -0.001.
    # Period 1 (d2..d5), value per unit invested at d1 = 0.5*A/10 + 0.5*B/20:
    #   d2 0.55+0.50=1.05 (r 0.05); d3 0.55+0.45=1.00 (r 1/1.05-1); d4 0.60+0.45=1.05 (r 0.05);
    #   d5 0.75+0.50=1.25 (gross r 1.25/1.05-1 = 25/21-1).
    # d5 drifted weights: A 0.75/1.25 = 0.6, B 0.4. Targets 0.25/0.75:
    #   turnover |0.25-0.6| + |0.75-0.4| = 0.7, cost 0.0007; r = 25/21 * 0.9993 - 1.
    # Period 2 (d6..d8), value = 0.25*A/15 + 0.75*B/20:
    #   d6 0.25+0.90=1.15 (r 0.15); d7 0.30+0.90=1.20 (r 1.2/1.15-1); d8 0.30+1.125=1.425
    #   (r 1.425/1.2-1 = 0.1875).
    returns = [
        -0.001,
        0.05,
        1 / 1.05 - 1,
        0.05,
        25 / 21 * 0.9993 - 1,
        0.15,
        1.2 / 1.15 - 1,
        0.1875,
    ]
    # equity = 0.999 * cumulative value: d1 0.999, d2 0.999*1.05 = 1.04895, d3 0.999,
    # d4 1.04895, d5 0.999*1.25*0.9993 = 1.247875875, then *1.15, *1.2/1.15, *1.425/1.2.
    e5 = 0.999 * 1.25 * 0.9993
    equity = [0.999, 1.04895, 0.999, 1.04895, e5, e5 * 1.15, e5 * 1.2, e5 * 1.425]
    expected = pl.DataFrame(
        {
            "date": D[:8],
            "portfolio_return": returns,
            "benchmark_return": [0.0] * 8,
            "equity": equity,
            "benchmark_equity": [1.0] * 8,
            # Only d3 is below a previous peak (d2's 1.04895).
            "drawdown": [0.0, 0.0, 0.999 / 1.04895 - 1, 0.0, 0.0, 0.0, 0.0, 0.0],
            "turnover": [1.0, 0, 0, 0, 0.7, 0, 0, 0],
            "costs": [0.001, 0, 0, 0, 0.0007, 0, 0, 0],
        },
        schema=DAILY_SCHEMA,
    )
    assert_frame_equal(result.daily, expected, abs_tol=1e-12)

    expected_holdings = pl.DataFrame(
        {
            "date": [D[0], D[0], D[4], D[4]],
            "ticker": ["A", "B", "A", "B"],
            "weight_before": [0.0, 0.0, 0.6, 0.4],
            "weight_target": [0.5, 0.5, 0.25, 0.75],
        }
    )
    assert_frame_equal(result.holdings, expected_holdings, abs_tol=1e-12)
    assert result.unfilled.height == 0


def test_trades_of_positions_held_to_the_end_are_open_and_marked_to_the_last_day():
    result = run_backtest(TWO_WEIGHTS, TWO, cost_bps=10.0, benchmark=ZERO_BENCH)
    # Both tickers are held through both periods: one spell each, still open at d8.
    # A: entry close = 2 * 10 (close_factor 2), return 18/10 - 1; B: 30/20 - 1.
    expected = pl.DataFrame(
        {
            "ticker": ["A", "B"],
            "entry_date": [D[0], D[0]],
            "exit_date": pl.Series([None, None], dtype=pl.Date),
            "entry_price": [20.0, 20.0],
            "exit_price": pl.Series([None, None], dtype=pl.Float64),
            "return": [0.8, 0.5],
            "sector": ["Energy", "Utilities"],
            "weight": [0.5, 0.5],
            "exit_reason": ["open", "open"],
        }
    )
    assert_frame_equal(result.trades, expected, abs_tol=1e-12)


def test_trades_record_exit_and_reentry_as_separate_spells_with_traded_closes():
    prices = make_prices(
        {
            "A": [10, 11, 12, 13, 14, 15, 16, 17],
            "B": [50, 40, 30, 40, 50, 60, 70, 80],
            "C": [5, 5, 6, 6, 7, 7, 8, 8],
        },
        close_factor={"A": 3.0, "B": 0.5},
    )
    weights = make_weights(
        [
            (D[0], "A", 0.5),
            (D[0], "B", 0.5),
            (D[2], "A", 0.5),
            (D[2], "C", 0.5),
            (D[4], "B", 1.0),
            (D[6], "A", 0.4),
            (D[6], "B", 0.6),
        ],
        sectors={"A": "Energy", "B": "Utilities", "C": "Materials"},
    )
    trades = run_backtest(weights, prices, benchmark=ZERO_BENCH).trades
    # A: d1 -> d5 (sold when the d5 portfolio is all B); again from d7, open.
    #    return 14/10-1 = 0.4 (close 3*10 -> 3*14); reopened: 17/16-1 = 0.0625 to d8.
    # B: d1 -> d3 (40*... close 0.5*50=25 -> 0.5*30=15, return 30/50-1 = -0.4);
    #    again d5 -> open (weight 1.0 at entry, return 80/50-1 = 0.6).
    # C: d3 -> d5: 7/6-1.
    expected = pl.DataFrame(
        {
            "ticker": ["A", "B", "B", "C", "A"],
            "entry_date": [D[0], D[0], D[4], D[2], D[6]],
            "exit_date": [D[4], D[2], None, D[4], None],
            "entry_price": [30.0, 25.0, 25.0, 6.0, 48.0],
            "exit_price": [42.0, 15.0, None, 7.0, None],
            "return": [0.4, -0.4, 0.6, 7 / 6 - 1, 17 / 16 - 1],
            "sector": ["Energy", "Utilities", "Utilities", "Materials", "Energy"],
            "weight": [0.5, 0.5, 1.0, 0.5, 0.4],
            "exit_reason": ["rebalance", "rebalance", "open", "rebalance", "open"],
        }
    ).sort("entry_date", "ticker")
    assert_frame_equal(trades, expected, abs_tol=1e-12)


def test_single_ticker_at_full_weight_without_costs_reproduces_its_returns():
    prices = make_prices({"A": [10, 11, 9.9, 10.5, 12, 11, 11.5, 13, 12, 12.5]})
    weights = make_weights([(D[0], "A", 1.0), (D[5], "A", 1.0)])
    daily = run_backtest(weights, prices, benchmark=ZERO_BENCH).daily
    own = prices["daily_return"].fill_null(0.0)  # d1 is the start: nothing earned yet
    assert_series_equal(daily["portfolio_return"], own, check_names=False, abs_tol=1e-14)
    assert daily["equity"][-1] == pytest.approx(12.5 / 10, abs=1e-14)
    # Buying from cash is one unit of turnover; rebalancing 1.0 -> 1.0 is none.
    assert daily["turnover"].to_list() == [1.0] + [0.0] * 9


def test_rebalancing_to_the_drifted_weights_trades_nothing_and_costs_nothing():
    # TWO drifts to A 0.6 / B 0.4 by d5 (see the first test); targeting exactly that is
    # buy and hold: no turnover, no cost, the same returns as never rebalancing.
    drifted = make_weights([(D[0], "A", 0.5), (D[0], "B", 0.5), (D[4], "A", 0.6), (D[4], "B", 0.4)])
    once = make_weights([(D[0], "A", 0.5), (D[0], "B", 0.5)])
    held = run_backtest(drifted, TWO, cost_bps=25.0, benchmark=ZERO_BENCH).daily
    never = run_backtest(once, TWO, cost_bps=25.0, benchmark=ZERO_BENCH).daily
    assert held["turnover"][4] == pytest.approx(0.0, abs=1e-15)
    assert held["costs"][4] == pytest.approx(0.0, abs=1e-15)
    assert_frame_equal(held, never, abs_tol=1e-12)


def test_delisted_holding_is_frozen_at_its_last_price_then_sold_at_the_next_rebalance():
    # A's prices stop after d3 (delisted); B trades every day. Rebalance d5 -> all B.
    prices = make_prices(
        {
            "A": [10, 11, 12, None, None, None, None, None],
            "B": [20, 20, 20, 22, 20, 20, 21, 21],
        }
    )
    weights = make_weights([(D[0], "A", 0.5), (D[0], "B", 0.5), (D[4], "B", 1.0)])
    result = run_backtest(weights, prices, benchmark=ZERO_BENCH)
    # Value: d2 0.55+0.5 = 1.05; d3 0.6+0.5 = 1.1; d4 A frozen 0.6 + 0.55 = 1.15;
    # d5 0.6 + 0.5 = 1.1. At d5 A (0.6/1.1) is sold at 12, B bought to 1.0: turnover
    # |0 - 6/11| + |1 - 5/11| = 12/11. d6 0, d7 0.05, d8 0.
    expected_returns = [0.0, 0.05, 1.1 / 1.05 - 1, 1.15 / 1.1 - 1, 1.1 / 1.15 - 1, 0.0, 0.05, 0.0]
    assert_series_equal(
        result.daily["portfolio_return"],
        pl.Series(expected_returns),
        check_names=False,
        abs_tol=1e-12,
    )
    assert result.daily["turnover"][4] == pytest.approx(12 / 11, abs=1e-12)
    # The trade exits where the prices stop (d3, close 12), marked 'delisted': never carried
    # forward as if still held, never dropped.
    trade_a = result.trades.filter(pl.col("ticker") == "A")
    assert trade_a.select("entry_date", "exit_date", "exit_price", "return", "exit_reason").row(
        0
    ) == (D[0], D[2], 12.0, pytest.approx(0.2, abs=1e-12), "delisted")
    assert result.trades.filter(pl.col("ticker") == "B")["exit_reason"].to_list() == ["open"]


def test_delisting_return_is_applied_on_the_last_day_with_a_price_and_stays_frozen():
    prices = make_prices(
        {
            "A": [10, 11, 12, None, None, None, None, None],
            "B": [20, 20, 20, 22, 20, 20, 21, 21],
        }
    )
    weights = make_weights([(D[0], "A", 0.5), (D[0], "B", 0.5), (D[4], "B", 1.0)])
    result = run_backtest(weights, prices, benchmark=ZERO_BENCH, delisting_return=-0.5)
    # A's last price 12 becomes worth 6: d3 value 0.5*6/10 + 0.5 = 0.8 (r 0.8/1.05 - 1);
    # d4 0.3 + 0.55 = 0.85; d5 0.3 + 0.5 = 0.8. Trade return 6/10 - 1 = -0.4, exit close 12.
    returns = result.daily["portfolio_return"].to_list()
    assert returns[2] == pytest.approx(0.8 / 1.05 - 1, abs=1e-12)
    assert returns[3] == pytest.approx(0.85 / 0.8 - 1, abs=1e-12)
    assert returns[4] == pytest.approx(0.8 / 0.85 - 1, abs=1e-12)
    trade_a = result.trades.filter(pl.col("ticker") == "A")
    assert trade_a["return"][0] == pytest.approx(-0.4, abs=1e-12)
    assert trade_a["exit_price"][0] == 12.0


def test_a_ticker_whose_prices_run_to_the_last_date_is_not_treated_as_delisted():
    # A misses d4 but trades again on d5: the gap carries 12, no delisting return applies.
    prices = make_prices({"A": [10, 11, 12, None, 13, 14], "B": [1, 1, 1, 1, 1, 1]})
    weights = make_weights([(D[0], "A", 1.0)])
    daily = run_backtest(weights, prices, benchmark=ZERO_BENCH, delisting_return=-0.9).daily
    assert daily["portfolio_return"].to_list() == pytest.approx(
        [0.0, 0.1, 1 / 11, 0.0, 1 / 12, 1 / 13], abs=1e-12
    )


def test_rebalance_day_return_is_earned_by_the_old_weights_not_the_new_ones():
    # Hold A from d1; switch to B at d3. On d3 A halves and B doubles: d3's return must be
    # A's (-0.5). B's move on d3 happened before it was bought at d3's close.
    prices = make_prices({"A": [10, 10, 5, 5, 5], "B": [10, 10, 20, 22, 22]})
    weights = make_weights([(D[0], "A", 1.0), (D[2], "B", 1.0)])
    daily = run_backtest(weights, prices, benchmark=ZERO_BENCH).daily
    assert daily["portfolio_return"].to_list() == pytest.approx([0.0, 0.0, -0.5, 0.1, 0.0])


def test_prices_after_a_day_do_not_change_results_up_to_that_day():
    base = {
        "A": [10, 11, 11, 12, 15, 15, 18, 18],
        "B": [20, 20, 18, 18, 20, 24, 24, 30],
    }
    changed = {"A": base["A"][:6] + [40, 2], "B": base["B"][:6] + [7, 90]}
    first = run_backtest(TWO_WEIGHTS, make_prices(base), cost_bps=10, benchmark=ZERO_BENCH)
    second = run_backtest(TWO_WEIGHTS, make_prices(changed), cost_bps=10, benchmark=ZERO_BENCH)
    assert_frame_equal(first.daily.head(6), second.daily.head(6))
    assert not first.daily.equals(second.daily)  # the change does matter from d7 on
    # end= cuts the series without looking beyond it.
    cut = run_backtest(
        TWO_WEIGHTS, make_prices(changed), cost_bps=10, benchmark=ZERO_BENCH, end=D[5]
    )
    assert_frame_equal(cut.daily, first.daily.head(6))


def test_missing_day_of_a_held_ticker_carries_its_last_price():
    prices = make_prices({"A": [10, 11, None, 12, 13], "B": [20, 20, 22, 22, 22]})
    weights = make_weights([(D[0], "A", 0.5), (D[0], "B", 0.5)])
    daily = run_backtest(weights, prices, benchmark=ZERO_BENCH).daily
    # d3: A carries 11 (0.55) + B 0.55 = 1.1 after 1.05; d4: 0.6 + 0.55 = 1.15.
    assert daily["portfolio_return"].to_list() == pytest.approx(
        [0.0, 0.05, 1.1 / 1.05 - 1, 1.15 / 1.1 - 1, 1.2 / 1.15 - 1], abs=1e-12
    )


def test_target_without_a_recent_price_stays_in_cash_and_is_reported_unfilled():
    # At d8 (index 7): B last traded at d2, six trading days earlier -> cannot be bought;
    # C last traded at d3, exactly MAX_STALE_TRADING_DAYS = 5 earlier -> bought at 40.
    days = 10
    prices = make_prices(
        {
            "A": [10.0] * days,
            "B": [5, 5, None, None, None, None, None, None, None, None],
            "C": [40, 40, 40, None, None, None, None, None, 44, 44],
        }
    )
    weights = make_weights([(D[0], "A", 1.0), (D[7], "A", 0.2), (D[7], "B", 0.4), (D[7], "C", 0.4)])
    assert MAX_STALE_TRADING_DAYS == 5
    result = run_backtest(weights, prices, benchmark=ZERO_BENCH)
    assert result.unfilled.to_dicts() == [
        {
            "rebalance_date": D[7],
            "ticker": "B",
            "sector": "Energy",
            "weight": 0.4,
            "last_price_date": D[1],
        }
    ]
    # After d8: A 0.2 flat, B's 0.4 in cash, C 0.4 * 44/40 on d9 -> return 0.04.
    assert result.daily["portfolio_return"].to_list()[8:] == pytest.approx([0.04, 0.0])
    # Turnover at d8 counts only executed trades: |0.2 - 1| + |0.4 - 0| = 1.2.
    assert result.daily["turnover"][7] == pytest.approx(1.2)
    assert result.holdings.filter(pl.col("date") == D[7])["ticker"].to_list() == ["A", "C"]


def test_cash_left_by_weights_summing_below_one_earns_nothing():
    prices = make_prices({"A": [10, 12, 15]})
    weights = make_weights([(D[0], "A", 0.5)])
    daily = run_backtest(weights, prices, benchmark=ZERO_BENCH).daily
    # d2 0.5*1.2 + 0.5 = 1.1; d3 0.5*1.5 + 0.5 = 1.25.
    assert daily["portfolio_return"].to_list() == pytest.approx([0.0, 0.1, 1.25 / 1.1 - 1])


def test_benchmark_columns_start_at_the_first_rebalance_and_compound():
    bench = pl.DataFrame(
        {"date": D[:8], "benchmark_return": [0.5, 0.1, -0.1, 0.0, 0.2, 0.0, 0.0, 0.05]}
    )
    daily = run_backtest(TWO_WEIGHTS, TWO, benchmark=bench).daily
    # d1's 0.5 happened before the start (both invest at d1's close).
    assert daily["benchmark_return"].to_list() == [0.0, 0.1, -0.1, 0.0, 0.2, 0.0, 0.0, 0.05]
    assert daily["benchmark_equity"][-1] == pytest.approx(1.1 * 0.9 * 1.2 * 1.05)


def test_strategy_name_is_prepended_to_every_output():
    result = run_backtest(TWO_WEIGHTS, TWO, benchmark=ZERO_BENCH, strategy="value")
    for frame in (result.daily, result.trades, result.holdings, result.unfilled):
        assert frame.columns[0] == "strategy"
    assert result.daily["strategy"].unique().to_list() == ["value"]


def test_default_benchmark_is_the_equal_weight_mean_of_prices():
    result = run_backtest(TWO_WEIGHTS, TWO)
    expected = equal_weight_benchmark(TWO)  # d2..d8: d1 has no returns yet
    assert expected["date"].to_list() == D[1:8]
    expected = expected["benchmark_return"].to_list()
    assert result.daily["benchmark_return"].to_list()[1:] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("weights", "prices", "message"),
    [
        (TWO_WEIGHTS.drop("weight"), TWO, "weights: missing column"),
        (TWO_WEIGHTS, TWO.drop("adj_close"), "prices: missing column"),
        (make_weights([(D[0], "A", 0.7), (D[0], "B", 0.7)]), TWO, "sum to more than 1"),
        (make_weights([(D[0], "A", -0.5)]), TWO, "negative weight"),
        (make_weights([(D[0], "A", 0.5), (D[0], "A", 0.5)]), TWO, "duplicated"),
        (make_weights([(date(2024, 1, 20), "A", 1.0)]), TWO, "no rebalance date on or before"),
        (
            make_weights([(date(2023, 12, 31), "A", 1.0)]),
            TWO,
            "not trading days",
        ),
        (TWO_WEIGHTS, pl.concat([TWO, TWO.head(1)]), "duplicated (ticker, date)"),
        (
            TWO_WEIGHTS,
            TWO.with_columns(
                pl.when(pl.col("date") == D[2]).then(0.0).otherwise("adj_close").alias("adj_close")
            ),
            "adj_close <= 0",
        ),
        (
            pl.concat(
                [
                    TWO_WEIGHTS.with_columns(strategy=pl.lit("x")),
                    TWO_WEIGHTS.with_columns(strategy=pl.lit("y")),
                ]
            ),
            TWO,
            "several strategies",
        ),
    ],
)
def test_bad_input_raises_a_clear_error(weights, prices, message):
    with pytest.raises(BacktestInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_backtest(weights, prices, benchmark=ZERO_BENCH)


def test_negative_costs_are_rejected():
    with pytest.raises(BacktestInputError, match="cost_bps"):
        run_backtest(TWO_WEIGHTS, TWO, cost_bps=-1.0)


def test_equal_weight_benchmark_averages_the_returns_present_each_day():
    prices = make_prices({"A": [10, 11, 11, 12.1], "B": [None, 20, 22, 11], "C": [5, 5.5]})
    # d1: no returns (first rows) -> no row. d2: A 0.1, C 0.1 (B's first row) -> 0.1.
    # d3: A 0, B 0.1 -> 0.05. d4: A 0.1, B -0.5 -> -0.2.
    expected = pl.DataFrame({"date": D[1:4], "benchmark_return": [0.1, 0.05, -0.2]})
    assert_frame_equal(equal_weight_benchmark(prices), expected, abs_tol=1e-12)


def test_equal_weight_benchmark_counts_only_members_on_each_date():
    prices = make_prices({"A": [10, 11, 11, 12.1], "B": [20, 20, 22, 11], "C": [5, 5.5]})
    membership = pl.DataFrame(
        {
            "universe": ["u", "u", "u"],
            "ticker": ["A", "B", "C"],
            "start_date": [D[0], D[2], D[0]],
            "end_date": [D[2], None, D[0]],  # inclusive; C left before its only return
        }
    )
    # d2: A only (B joins d3, C left d1) -> 0.1; d3: A 0, B 0.1 -> 0.05; d4: B -0.5.
    expected = pl.DataFrame({"date": D[1:4], "benchmark_return": [0.1, 0.05, -0.5]})
    assert_frame_equal(equal_weight_benchmark(prices, membership), expected, abs_tol=1e-12)


def test_quarterly_summary_compounds_daily_returns_within_calendar_quarters():
    daily = pl.DataFrame(
        {
            "date": [date(2015, 3, 30), date(2015, 3, 31), date(2015, 4, 1), date(2015, 6, 30)],
            "portfolio_return": [0.1, 0.1, -0.5, 0.2],
            "benchmark_return": [0.0, 0.05, 0.1, 0.1],
        }
    )
    # 2015Q1: 1.1*1.1-1 = 0.21 vs 0.05 -> excess 0.16.
    # 2015Q2: 0.5*1.2-1 = -0.4 vs 1.1*1.1-1 = 0.21 -> excess -0.61.
    expected = pl.DataFrame(
        {
            "quarter": ["2015Q1", "2015Q2"],
            "portfolio_return": [0.21, -0.4],
            "benchmark_return": [0.05, 0.21],
            "excess_return": [0.16, -0.61],
        }
    )
    assert_frame_equal(quarterly_summary(daily), expected, abs_tol=1e-12)


def test_quarterly_summary_keeps_strategies_apart():
    daily = pl.DataFrame(
        {
            "strategy": ["a", "b"],
            "date": [date(2015, 3, 30), date(2015, 3, 30)],
            "portfolio_return": [0.1, 0.2],
            "benchmark_return": [0.0, 0.0],
        }
    )
    out = quarterly_summary(daily)
    assert out["strategy"].to_list() == ["a", "b"]
    assert out["portfolio_return"].to_list() == pytest.approx([0.1, 0.2])


# ---------------------------------------------------------------------------------------------
# Second, independent computation: a day-by-day share-based simulation in plain Python.


def reference_backtest(weights, prices, cost_bps, delisting_return):
    """Hold share counts and cash; value them each day at the last known adjusted close."""
    calendar = sorted(set(prices["date"].to_list()))
    last_market = calendar[-1]
    adj: dict[str, dict[date, float]] = {}
    for ticker, day, value in prices.select("ticker", "date", "adj_close").iter_rows():
        adj.setdefault(ticker, {})[day] = value
    if delisting_return is not None:
        for series in adj.values():
            last = max(series)
            if last < last_market:
                series[last] *= 1 + delisting_return
    targets: dict[date, dict[str, float]] = {}
    for day, ticker, w in weights.select("rebalance_date", "ticker", "weight").iter_rows():
        targets.setdefault(day, {})[ticker] = w
    index = {day: i for i, day in enumerate(calendar)}

    def last_price(ticker, day, max_age=None):
        for i in range(index[day], -1, -1):
            if max_age is not None and index[day] - i > max_age:
                return None
            value = adj.get(ticker, {}).get(calendar[i])
            if value is not None:
                return value
        return None

    start = min(targets)
    shares: dict[str, float] = {}
    unfilled = []
    cash = 1.0
    previous = 1.0
    out = []
    for day in calendar[index[start] :]:
        value = cash + sum(n * last_price(t, day) for t, n in shares.items())
        turnover = cost = 0.0
        if day in targets:
            before = {t: n * last_price(t, day) / value for t, n in shares.items()}
            buy = {}
            for t, w in targets[day].items():
                p = last_price(t, day, MAX_STALE_TRADING_DAYS)
                if p is not None and w > 0:
                    buy[t] = (w, p)
                elif w > 0:
                    unfilled.append((day, t))
            names = set(before) | set(buy)
            turnover = sum(abs(buy.get(t, (0.0, 0))[0] - before.get(t, 0.0)) for t in names)
            cost = turnover * cost_bps / 1e4
            value *= 1 - cost
            shares = {t: w * value / p for t, (w, p) in buy.items()}
            cash = value * (1 - sum(w for w, _ in buy.values()))
        out.append((day, value / previous - 1, turnover, cost))
        previous = value
    daily = pl.DataFrame(
        out,
        schema={
            "date": pl.Date,
            "portfolio_return": pl.Float64,
            "turnover": pl.Float64,
            "costs": pl.Float64,
        },
        orient="row",
    )
    return daily, sorted(unfilled)


def random_market(seed: int, n_tickers: int = 10, n_days: int = 300):
    rng = np.random.default_rng(seed)
    days = [date(2020, 1, 1) + timedelta(days=i) for i in range(n_days)]
    rows = []
    for k in range(n_tickers):
        price = 50.0
        stop = 150 if k == 3 else n_days  # T3 delists at day 150
        start = 110 if k == 7 else 0  # T7 lists after the first rebalance
        for i in range(start, stop):
            price *= 1 + rng.normal(0.0005, 0.02)
            if rng.random() < 0.03 and 0 < i < stop - 1:
                continue  # missing day
            rows.append((f"T{k}", days[i], price * 1.7, price))
    prices = pl.DataFrame(
        rows,
        schema={"ticker": pl.String, "date": pl.Date, "close": pl.Float64, "adj_close": pl.Float64},
        orient="row",
    )
    weight_rows = []
    for r, (i, names) in enumerate([(5, 6), (100, 7), (200, 8)]):
        chosen = rng.choice(n_tickers, names, replace=False)
        if r == 1:
            chosen = np.union1d(chosen, [3])  # hold the ticker that delists at day 150
        if r == 2:
            chosen = np.union1d(chosen, [3, 7])  # T3 cannot be bought any more
        raw = rng.random(len(chosen))
        scale = 0.9 if r == 1 else 1.0  # leave 10% cash once
        for k, w in zip(chosen, raw / raw.sum() * scale, strict=True):
            weight_rows.append((days[i], f"T{k}", w))
    return prices, make_weights(weight_rows)


@pytest.mark.parametrize(("seed", "delisting_return"), [(1, None), (2, -0.3)])
def test_engine_agrees_with_a_share_based_day_by_day_simulation(seed, delisting_return):
    prices, weights = random_market(seed)
    result = run_backtest(
        weights, prices, cost_bps=15.0, benchmark=ZERO_BENCH, delisting_return=delisting_return
    )
    reference, unfilled = reference_backtest(weights, prices, 15.0, delisting_return)
    assert_frame_equal(
        result.daily.select("date", "portfolio_return", "turnover", "costs"),
        reference,
        abs_tol=1e-10,
        rel_tol=0,
    )
    assert result.unfilled.select("rebalance_date", "ticker").rows() == unfilled
    assert ("T3" in [t for _, t in unfilled]) and len(unfilled) >= 1  # the delisted one
    equity = (1 + reference["portfolio_return"]).cum_prod()
    assert_series_equal(result.daily["equity"], equity, check_names=False, abs_tol=1e-10)


def test_a_rebalance_with_only_zero_weights_sells_everything_into_cash():
    prices = make_prices({"A": [10, 11, 12, 15, 9]})
    weights = make_weights([(D[0], "A", 1.0), (D[2], "A", 0.0)])
    result = run_backtest(weights, prices, cost_bps=100.0, benchmark=ZERO_BENCH)
    # d3: A's return 12/11 - 1 earned, then sold: turnover 1, cost 1%; then cash earns 0.
    assert result.daily["portfolio_return"].to_list() == pytest.approx(
        [-0.01, 0.1, 12 / 11 * 0.99 - 1, 0.0, 0.0]
    )
    assert result.trades.select("exit_date", "exit_price", "return").row(0) == (
        D[2],
        12.0,
        pytest.approx(0.2),
    )

"""Bounded inputs for orders and holdings (issue 13, item 9): every accepted input finishes in
bounded time, out-of-bounds magnitudes and odd number forms are refused, files are bounded."""

from __future__ import annotations

import time

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quant_pipeline.core.accounts import orders as orders_module
from quant_pipeline.core.accounts.holdings import (
    MAX_FILE_BYTES,
    MAX_LISTED_PROBLEMS,
    HoldingsError,
    parse_holdings,
)
from quant_pipeline.core.accounts.orders import OrdersError, build_orders
from quant_pipeline.core.backtest.costs import CommissionModel


def market(n: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    tickers = [f"T{i:03d}" for i in range(n)]
    w = rng.uniform(0.5, 1.5, n)
    weights = pl.DataFrame({"ticker": tickers, "weight": w / w.sum() * 0.98})
    prices = pl.DataFrame({"ticker": tickers, "price": rng.uniform(5, 500, n).round(2)})
    return weights, prices


@pytest.mark.parametrize(
    ("seed", "capital", "bulk_shares"), [(1, 1e5, 0), (3, 1e10, 1), (3, 1e11, 112), (3, 1e12, 1470)]
)
def test_bulk_buying_of_leftover_cash_gives_the_same_orders_as_one_share_at_a_time(
    monkeypatch, seed, capital, bulk_shares
):
    # 5 bps slippage makes the cost reserve overshoot, leaving cash for many single shares.
    weights, prices = market(40, seed)
    held = pl.DataFrame({"ticker": ["T001", "T007"], "shares": [120.0, 3.0]})
    args = {"capital": capital, "holdings": held, "min_trade_value": 50,
            "commission": CommissionModel(slippage_bps=5)}  # fmt: skip
    bought: list[float] = []
    bulk = orders_module._bulk_leftover

    def counted(trade, *rest):
        before = trade.sum()
        remaining = bulk(trade, *rest)
        bought.append(float(trade.sum() - before))
        return remaining

    monkeypatch.setattr(orders_module, "_bulk_leftover", counted)
    fast = build_orders(weights, prices, **args)
    assert bought == [bulk_shares]  # the bulk step really bought (or, small, did nothing)
    monkeypatch.setattr(orders_module, "_BULK_ROUNDS", 0)  # the one-share loop alone
    slow = build_orders(weights, prices, **args)
    assert_frame_equal(fast.orders, slow.orders)
    assert fast.summary() == slow.summary()


def test_the_largest_accepted_account_finishes_in_seconds():
    weights, prices = market(500, 5)
    started = time.perf_counter()
    result = build_orders(weights, prices, capital=1e12)
    assert time.perf_counter() - started < 5
    assert result.summary()["cash_after"] >= 0
    held = pl.DataFrame({"ticker": ["T000", "T001"], "shares": [1e11, 5e10]})
    started = time.perf_counter()
    build_orders(weights, prices, holdings=held)
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"capital": 1e13}, "capital must be at most $1e+12, got 1e+13"),
        ({"capital": 1.0, "cash": 1e308}, "cash must be at most $1e+12"),
        (
            {"holdings": pl.DataFrame({"ticker": ["T000"], "shares": [1e308]})},
            "holdings shares must be at most 1e+11: T000=1e+308",
        ),  # fmt: skip
    ],
)
def test_magnitudes_beyond_the_bounds_are_refused(kwargs, message):
    weights, prices = market(5, 6)
    with pytest.raises(OrdersError) as exc:
        build_orders(weights, prices, **kwargs)
    assert message in str(exc.value)


@pytest.mark.parametrize("value", ["１０", "١٠", "1_000", "0x10", "1e", "--5", "1,00", "١,٠٠٠"])
def test_only_ascii_numbers_in_the_documented_forms_are_read(value):
    with pytest.raises(HoldingsError) as exc:
        parse_holdings(f'ticker,shares\nAAPL,"{value}"\n')
    assert f"line 2: shares '{value}' is not a number" in str(exc.value)


def test_documented_number_forms_are_read():
    frame = parse_holdings('ticker,shares,invested\nA,10,$1500\nB,2.5,\nC,".5",1e3\nD,"1,234.5",\n')
    assert frame["shares"].to_list() == [10.0, 2.5, 0.5, 1234.5]
    assert frame["cost_basis"].to_list() == [1500.0, None, 1000.0, None]


def test_shares_beyond_the_bound_are_refused_with_the_line():
    with pytest.raises(HoldingsError, match=r"line 3: shares '1e308' is more than 1e\+11 shares"):
        parse_holdings("ticker,shares\nA,1\nB,1e308\n")


def test_content_over_the_size_limit_is_refused():
    content = "ticker,shares\n" + "AAPL,1\n" * (MAX_FILE_BYTES // 7 + 1)
    with pytest.raises(HoldingsError, match="is larger than 1,000,000 bytes"):
        parse_holdings(content)


def test_many_bad_rows_list_the_first_ones_and_count_the_rest():
    rows = "".join(f"X{i},1\n" for i in range(2000))
    with pytest.raises(HoldingsError) as exc:
        parse_holdings("ticker,shares\n" + rows, known_tickers=["AAPL"])
    message = str(exc.value)
    assert "2000 bad rows" in message
    assert message.count("is not a known ticker") == MAX_LISTED_PROBLEMS
    assert f"... and {2000 - MAX_LISTED_PROBLEMS} more problems" in message
    assert len(exc.value.problems) == 2000

"""Row flags: a strategy that never fired, sat mostly in cash or closed too few trades is named."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from quant_pipeline.core.backtest.row_flags import row_flags, strategy_flags
from quant_pipeline.core.reporting.tearsheet import render_tearsheet


def daily(name: str, orders: list[int | None], cash: list[float]) -> pl.DataFrame:
    n = len(orders)
    return pl.DataFrame(
        {
            "strategy": [name] * n,
            "date": [date(2024, 1, 1) + timedelta(days=i) for i in range(n)],
            "portfolio_return": [0.0] * n,
            "orders": pl.Series(orders, dtype=pl.Int64),
            "cash": cash,
            "portfolio_value": [100.0] * n,
        }
    )


def trades(name: str, closed: int, open_: int = 0) -> pl.DataFrame:
    exits = [date(2024, 2, 1)] * closed + [None] * open_
    return pl.DataFrame(
        {"strategy": [name] * len(exits), "exit_date": pl.Series(exits, dtype=pl.Date)}
    )


def test_a_strategy_with_no_order_never_fired():
    assert row_flags(daily("s", [0, 0, 0], [100.0] * 3), 0) == ["never fired: no order placed"]


def test_mostly_cash_is_an_average_invested_share_below_half_and_few_trades_below_30():
    # invested 1 - 90/100 = 10% on each of 4 days; 29 closed trades
    flags = row_flags(daily("s", [2, 0, 1, 0], [90.0] * 4), 29)
    assert flags == [
        "mostly cash: 10% invested on average",
        "too few trades to judge: 29 closed (fewer than 30)",
    ]
    # invested 50% exactly and 30 closed trades: neither flag
    assert row_flags(daily("s", [2, 0], [50.0, 50.0]), 30) == []


def test_strategy_flags_count_closed_trades_only_and_leave_a_blend_unflagged():
    frame = pl.concat(
        [
            daily("busy", [3, 1], [0.0, 0.0]),
            daily("idle", [1, 0], [99.0, 99.0]),
            daily("blend", [None, None], [0.0, 0.0]),
        ]
    )
    t = pl.concat([trades("busy", 30), trades("idle", 2, open_=40)])
    got = strategy_flags(frame, t).rows()
    assert got == [
        ("blend", None),
        ("busy", None),
        (
            "idle",
            "mostly cash: 1% invested on average; too few trades to judge: 2 closed "
            "(fewer than 30)",
        ),
    ]


def test_the_tear_sheet_repeats_the_warning_under_its_title():
    metrics = pl.DataFrame({"metric": ["cagr"], "value": [0.1]})
    page = render_tearsheet(
        "idle",
        metrics,
        daily("idle", [1, 0], [99.0, 99.0]),
        None,
        None,
        {},
        labels={"warning": "never fired: no order placed"},
    )
    assert '<p class="warning"><strong>Read with care: never fired' in page
    plain = render_tearsheet("idle", metrics, daily("idle", [1], [0.0]), None, None, {})
    assert 'class="warning"' not in plain


def test_a_strategy_left_out_of_the_backtest_gets_a_row_before_the_benchmark():
    from quant_pipeline.core.backtest.row_flags import with_skipped

    comparison = pl.DataFrame(
        {"strategy": ["a", "benchmark"], "cagr": [0.1, 0.08], "flags": [None, None]},
        schema_overrides={"flags": pl.String},
    )
    skipped = pl.DataFrame({"strategy": ["quiet", "a"], "reason": ["no target weights", "x"]})
    got = with_skipped(comparison, skipped)
    assert got.rows() == [
        ("a", 0.1, None),
        ("quiet", None, "never fired (not backtested): no target weights"),
        ("benchmark", 0.08, None),
    ]
    assert with_skipped(comparison, skipped.head(0)).equals(comparison)

"""Live-portfolio value history, weights and limit breaches on hand-computed frames."""

from datetime import date

import polars as pl
import pytest

from quant_pipeline.core.accounts.health import (
    drawdown_breaches,
    mark_to_market,
    position_breaches,
    position_weights,
    sector_breaches,
)

D = [date(2024, 1, d) for d in (2, 3, 4, 5)]


def _prices(rows):
    return pl.DataFrame(
        rows,
        schema={"ticker": pl.String, "date": pl.Date, "close": pl.Float64, "adj_close": pl.Float64},
        orient="row",
    )


def _holdings(rows):
    return pl.DataFrame(
        rows,
        schema={"portfolio": pl.String, "ticker": pl.String, "shares": pl.Float64},
        orient="row",
    )


def test_a_split_does_not_move_the_value_of_the_position():
    # 2:1 split on day 3: close 100 -> 50, adj_close 50 throughout; 10 shares (post-split count)
    prices = _prices(
        [("S", d, c, 50.0) for d, c in zip(D, [100.0, 100.0, 50.0, 50.0], strict=True)]
    )
    value = mark_to_market(_holdings([("p", "S", 10.0)]), prices)
    assert value["value"].to_list() == [500.0, 500.0, 500.0, 500.0]
    assert value["drawdown"].to_list() == [0.0, 0.0, 0.0, 0.0]


def test_value_follows_the_adjusted_path_and_ends_at_market_value():
    # adj_close 9, 10, 8, 9.5 with latest close 19 (adj scaled by 1/2): value = 4 * 19 * adj / 9.5
    prices = _prices([("X", d, 2 * a, a) for d, a in zip(D, [9.0, 10.0, 8.0, 9.5], strict=True)])
    value = mark_to_market(_holdings([("p", "X", 4.0)]), prices)
    assert value["value"].to_list() == pytest.approx([72.0, 80.0, 64.0, 76.0])
    assert value["peak"].to_list() == pytest.approx([72.0, 80.0, 80.0, 80.0])
    assert value["drawdown"].to_list() == pytest.approx([0.0, 0.0, -0.2, -0.05])


def test_the_series_starts_when_every_position_is_priced_and_carries_missing_days():
    prices = _prices(
        [("A", D[0], 10.0, 10.0), ("A", D[1], 11.0, 11.0), ("A", D[3], 12.0, 12.0)]
        + [("B", D[1], 5.0, 5.0), ("B", D[2], 6.0, 6.0), ("B", D[3], 6.0, 6.0)]
    )
    value = mark_to_market(_holdings([("p", "A", 1.0), ("p", "B", 2.0)]), prices)
    # day 1: B unpriced -> no row; day 3: A missing -> carries 11
    assert value["date"].to_list() == D[1:]
    assert value["value"].to_list() == [21.0, 23.0, 24.0]


def test_the_lookback_keeps_only_the_last_trading_days_for_the_peak():
    prices = _prices([("A", d, c, c) for d, c in zip(D, [50.0, 20.0, 10.0, 15.0], strict=True)])
    value = mark_to_market(_holdings([("p", "A", 1.0)]), prices, lookback_days=2)
    assert value["date"].to_list() == D[2:]
    assert value["drawdown"].to_list() == [0.0, 0.0]  # the 50 peak is outside the window


def test_weights_and_breaches_name_the_numbers_that_broke_the_rule():
    holdings = _holdings(
        [("p", "A", 10.0), ("p", "B", 10.0), ("p", "C", 20.0), ("q", "A", 1.0), ("p", "Z", 0.0)]
    )
    latest = pl.DataFrame(
        {"ticker": ["A", "B", "C"], "price": [50.0, 30.0, 10.0], "price_date": [D[3]] * 3}
    )
    sectors = pl.DataFrame({"ticker": ["A", "B"], "sector": ["Energy", "Energy"]})
    positions = position_weights(holdings, latest, sectors)
    # p: A 500, B 300, C 200 of 1,000; q: A 50 of 50
    assert positions.select("portfolio", "ticker", "sector", "weight").rows() == [
        ("p", "A", "Energy", 0.5),
        ("p", "B", "Energy", 0.3),
        ("p", "C", "Unknown", 0.2),
        ("q", "A", "Energy", 1.0),
    ]
    limits = pl.DataFrame(
        {
            "portfolio": ["p", "q"],
            "max_drawdown": [0.1, 0.5],
            "max_sector_weight": [0.6, 1.0],
            "max_position_weight": [0.4, 1.0],
        }
    )
    assert sector_breaches(positions, limits).select("portfolio", "sector", "weight").rows() == [
        ("p", "Energy", 0.8)
    ]
    assert position_breaches(positions, limits).select("portfolio", "ticker", "weight").rows() == [
        ("p", "A", 0.5)
    ]
    values = pl.DataFrame(
        {
            "portfolio": ["p", "p", "q", "q"],
            "date": [D[0], D[1], D[0], D[1]],
            "value": [100.0, 85.0, 100.0, 60.0],
            "peak": [100.0, 100.0, 100.0, 100.0],
            "drawdown": [0.0, -0.15, 0.0, -0.4],
        }
    )
    # p: 15% below peak > 10% limit; q: 40% < 50%
    assert drawdown_breaches(values, limits).select("portfolio", "drawdown").rows() == [
        ("p", -0.15)
    ]

"""A blend's daily rows in currency: its equity times the capital its sleeves started with."""

from datetime import date

import polars as pl
import pytest

from quant_pipeline.defs.backtest import blend_in_currency


def test_blend_value_is_equity_times_the_weighted_starting_capital_of_its_sleeves():
    d1, d2 = date(2024, 1, 2), date(2024, 1, 3)
    # sleeve a started with 1,000 (value / equity on its first day), sleeve b with 3,000
    sleeves = pl.DataFrame(
        {
            "strategy": ["a", "a", "b", "b"],
            "date": [d1, d2, d1, d2],
            "equity": [1.0, 1.1, 1.0, 0.9],
            "portfolio_value": [1000.0, 1100.0, 3000.0, 2700.0],
        }
    )
    blend = pl.DataFrame({"strategy": "ab", "date": [d1, d2], "equity": [1.0, 1.05]})
    got = blend_in_currency(blend, sleeves, {"a": 0.25, "b": 0.75})
    # capital 0.25 x 1,000 + 0.75 x 3,000 = 2,500; day 2: 1.05 x 2,500 = 2,625
    assert got["portfolio_value"].to_list() == pytest.approx([2500.0, 2625.0])

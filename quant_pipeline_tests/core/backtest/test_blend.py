"""Blends: combined daily returns from sleeves and an exact additive attribution."""

from datetime import date

import polars as pl
import pytest

from quant_pipeline.core.backtest.blend import BlendInputError, blend_returns

DATES = [date(2020, 1, 30), date(2020, 1, 31), date(2020, 2, 3), date(2020, 2, 4)]


def sleeves(a, b, turnover_a=(0.0, 0.0, 0.0, 0.0)):
    return pl.DataFrame(
        {
            "strategy": ["a"] * 4 + ["b"] * 4,
            "date": DATES + DATES,
            "portfolio_return": [*a, *b],
            "turnover": [*turnover_a, 0.0, 0.0, 0.0, 0.0],
            "costs": [0.0] * 8,
        }
    )


A = [0.0, 0.10, 0.10, 0.10]
B = [0.0, 0.0, -0.10, 0.0]


def test_two_sleeves_drift_within_the_month_and_reset_on_its_first_day():
    # 0.5 / 0.5 bought at the close of Jan 30.
    # Jan 31: a +10%: values (0.55, 0.50), equity 1.05; contributions a 0.05
    # Feb 3:  a +10%, b -10%: a earns 0.055, b -0.05 -> values (0.605, 0.45), equity 1.055;
    #         first trading day of February: reset to (0.5275, 0.5275)
    # Feb 4:  a +10%: a earns 0.05275 -> equity 1.10775
    daily, attribution = blend_returns(
        sleeves(A, B, turnover_a=(0.0, 0.0, 0.2, 0.0)), {"a": 0.5, "b": 0.5}, "monthly", name="mix"
    )
    assert daily["portfolio_return"].to_list() == pytest.approx(
        [0.0, 0.05, 1.055 / 1.05 - 1, 1.10775 / 1.055 - 1]
    )
    assert daily["equity"].to_list() == pytest.approx([1.0, 1.05, 1.055, 1.10775])
    # Feb 3 turnover: a's 0.2 weighted by a's share at the previous close, 0.55 / 1.05
    assert daily["turnover"].to_list() == pytest.approx([0.0, 0.0, 0.2 * 0.55 / 1.05, 0.0])
    assert daily["strategy"].unique().to_list() == ["mix"]
    rows = {r["sleeve"]: r for r in attribution.iter_rows(named=True)}
    assert rows["a"]["contribution"] == pytest.approx(0.05 + 0.055 + 0.05275)
    assert rows["b"]["contribution"] == pytest.approx(-0.05)
    assert rows["a"]["sleeve_return"] == pytest.approx(1.1**3 - 1)
    assert rows["b"]["sleeve_return"] == pytest.approx(-0.10)
    assert rows["a"]["blend_return"] == pytest.approx(0.10775)
    assert sum(r["contribution"] for r in rows.values()) == pytest.approx(0.10775)
    assert (rows["a"]["start_date"], rows["a"]["end_date"]) == (DATES[0], DATES[-1])


def test_daily_reweighting_resets_the_weights_every_day():
    # Jan 31: equity 1.05, reset (0.525, 0.525); Feb 3: a +0.0525, b -0.0525 -> 1.05;
    # Feb 4: reset (0.525, 0.525), a +0.0525 -> 1.1025
    daily, attribution = blend_returns(sleeves(A, B), {"a": 0.5, "b": 0.5}, "daily")
    assert daily["equity"].to_list() == pytest.approx([1.0, 1.05, 1.05, 1.1025])
    assert attribution["contribution"].to_list() == pytest.approx([0.155, -0.0525])


def test_the_blend_starts_when_every_sleeve_has_returns():
    late_b = sleeves(A, B).filter((pl.col("strategy") == "a") | (pl.col("date") >= DATES[1]))
    daily, _ = blend_returns(late_b, {"a": 0.5, "b": 0.5}, "monthly")
    assert daily["date"].to_list() == DATES[1:]
    assert daily["portfolio_return"][0] == 0.0


def test_the_benchmark_is_compounded_from_the_blend_start():
    bench = pl.DataFrame({"date": DATES, "benchmark_return": [0.5, 0.01, 0.02, -0.01]})
    daily, _ = blend_returns(sleeves(A, B), {"a": 0.5, "b": 0.5}, "monthly", benchmark=bench)
    assert daily["benchmark_return"].to_list() == [0.0, 0.01, 0.02, -0.01]
    assert daily["benchmark_equity"][-1] == pytest.approx(1.01 * 1.02 * 0.99)


def test_a_missing_sleeve_is_named():
    with pytest.raises(BlendInputError, match=r"sleeve\(s\) \['c'\]"):
        blend_returns(sleeves(A, B), {"a": 0.5, "c": 0.5})


def test_weights_must_sum_to_one():
    with pytest.raises(BlendInputError, match="sum to 1"):
        blend_returns(sleeves(A, B), {"a": 0.5, "b": 0.6})

"""Factor diagnostics on tiny hand-computed frames."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quant_pipeline.core.research import factor_diagnostics as dg

D1, D2, D3, D4, D5 = (date(2020, 1, d) for d in (1, 2, 3, 4, 5))


def _prices(rows: list[tuple[str, date, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ticker": [r[0] for r in rows],
            "date": [r[1] for r in rows],
            "adj_close": [r[2] for r in rows],
        }
    )


def test_forward_returns_run_close_to_next_close_and_delisted_names_keep_their_last_price():
    prices = _prices(
        [
            ("A", d, p)
            for d, p in zip((D1, D2, D3, D4, D5), (10.0, 11.0, 12.0, 13.0, 14.0), strict=True)
        ]
        + [
            ("B", d, p) for d, p in zip((D1, D2, D3, D4), (20.0, 21.0, 22.0, 23.0), strict=True)
        ]  # delisted
        + [("C", d, p) for d, p in zip((D3, D4, D5), (5.0, 6.0, 7.0), strict=True)]  # listed on D3
        + [("X", D1, 1.0)]  # gone before D3: no row for D3
    )
    out = dg.forward_returns(prices, [D3, D1, D5])
    expected = pl.DataFrame(
        {
            "rebalance_date": [D1, D1, D1, D3, D3, D3],
            "ticker": ["A", "B", "X", "A", "B", "C"],
            # A 12/10-1; B 22/20-1; X 1/1-1 (its last price); A 14/12-1; B 23/22-1; C 7/5-1
            "forward_return": [0.2, 0.1, 0.0, 14 / 12 - 1, 23 / 22 - 1, 0.4],
        }
    )
    assert_frame_equal(out, expected)


def _factor(date_: date, values: dict[str, float], col: str = "f") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "rebalance_date": [date_] * len(values),
            "ticker": list(values),
            col: list(values.values()),
        }
    )


def _fwd(date_: date, values: dict[str, float]) -> pl.DataFrame:
    return _factor(date_, values, "forward_return")


FWD = pl.concat(
    [
        _fwd(D1, {"A": 0.01, "B": 0.03, "C": 0.02, "D": 0.06}),
        _fwd(D2, {"A": -0.02, "B": 0.00, "C": 0.05, "D": 0.01}),
    ]
)


def test_ic_of_a_factor_equal_to_the_forward_return_is_one_and_of_its_negative_minus_one():
    factor = FWD.rename({"forward_return": "f"})
    ic = dg.information_coefficient(factor, "f", FWD)
    assert ic["ic"].to_list() == pytest.approx([1.0, 1.0])
    assert ic["n"].to_list() == [4, 4]
    neg = dg.information_coefficient(factor.with_columns(-pl.col("f")), "f", FWD)
    assert neg["ic"].to_list() == pytest.approx([-1.0, -1.0])


def test_ic_is_a_rank_correlation_golden():
    # D1 factor ranks A1 B2 C3 D4; return ranks A1 B3 C2 D4: d = 0, -1, 1, 0
    # Spearman = 1 - 6 x 2 / (4 x 15) = 0.8
    factor = _factor(D1, {"A": 1.0, "B": 2.0, "C": 3.0, "D": 40.0})
    ic = dg.information_coefficient(factor, "f", FWD)
    assert ic["ic"].to_list() == pytest.approx([0.8])


def test_ic_ignores_missing_values_and_is_null_for_a_constant_factor():
    factor = pl.concat(
        [
            _factor(D1, {"A": 1.0, "B": None, "C": 3.0, "D": 4.0}),
            _factor(D2, dict.fromkeys("ABCD", 1.0)),
        ]
    )
    ic = dg.information_coefficient(factor, "f", FWD)
    # D1 over A, C, D: factor ranks 1 2 3, return ranks 1 2 3 -> 1
    assert ic.rows() == [(D1, pytest.approx(1.0), 3), (D2, None, 4)]


def test_ic_summary_golden():
    ic = pl.DataFrame({"rebalance_date": [D1, D2, D3, D4], "ic": [0.1, 0.3, -0.1, None]})
    s = dg.ic_summary(ic)
    # mean 0.1; std sqrt((0 + 0.04 + 0.04) / 2) = 0.2; t = 0.1 / (0.2 / sqrt 3)
    assert s["mean"] == pytest.approx(0.1)
    assert s["std"] == pytest.approx(0.2)
    assert s["t_stat"] == pytest.approx(0.1 / (0.2 / math.sqrt(3)))
    assert s["hit_rate"] == pytest.approx(2 / 3)
    assert s["n_periods"] == 3


def test_quantile_returns_and_the_top_minus_bottom_spread_golden():
    factor = _factor(D1, {"A": 1.0, "B": 2.0, "C": 3.0, "D": 4.0})
    q = dg.quantile_returns(factor, "f", FWD, quantiles=2)
    # ranks 1..4 -> quantiles ceil(r x 2 / 4) = 1 1 2 2; q1 = (0.01 + 0.03)/2, q2 = (0.02 + 0.06)/2
    expected = pl.DataFrame(
        {
            "rebalance_date": [D1, D1],
            "quantile": pl.Series([1, 2], dtype=pl.Int32),
            "mean_forward_return": [0.02, 0.04],
            "n": [2, 2],
        }
    )
    assert_frame_equal(q, expected)
    spread = dg.top_minus_bottom(q)
    assert spread.rows() == [(D1, pytest.approx(0.04), pytest.approx(0.02), pytest.approx(0.02))]


def test_quantile_returns_put_the_highest_factor_values_in_the_top_quantile():
    factor = _factor(D1, {k: float(i) for i, k in enumerate("ABCDEFGHIJ")})
    fwd = _fwd(D1, {k: float(i) for i, k in enumerate("ABCDEFGHIJ")})
    q = dg.quantile_returns(factor, "f", fwd, quantiles=5)
    # two names per quintile: (0,1) (2,3) ... (8,9)
    assert q["mean_forward_return"].to_list() == [0.5, 2.5, 4.5, 6.5, 8.5]
    assert q["n"].to_list() == [2] * 5


def test_factor_turnover_is_the_share_of_the_top_quantile_that_is_new():
    factor = pl.concat(
        [
            _factor(D1, {"A": 1.0, "B": 2.0, "C": 3.0, "D": 4.0}),  # top half {C, D}
            _factor(D2, {"A": 1.0, "B": 4.0, "C": 2.0, "D": 3.0}),  # top half {B, D}
            _factor(D3, {"A": 1.0, "B": 4.0, "C": 2.0, "D": 3.0}),  # unchanged
        ]
    )
    out = dg.factor_turnover(factor, "f", quantiles=2)
    assert out.rows() == [(D2, 0.5), (D3, 0.0)]
    bottom = dg.factor_turnover(factor, "f", quantiles=2, quantile=1)  # {A,B} -> {A,C} -> same
    assert bottom.rows() == [(D2, 0.5), (D3, 0.0)]


def test_rank_autocorrelation_is_one_for_a_fixed_order_and_minus_one_for_a_reversal():
    factor = pl.concat(
        [
            _factor(D1, {"A": 1.0, "B": 2.0, "C": 3.0}),
            _factor(D2, {"A": 10.0, "B": 20.0, "C": 30.0, "D": 0.0}),  # D is new: left out
            _factor(D3, {"A": 3.0, "B": 2.0, "C": 1.0}),
        ]
    )
    out = dg.rank_autocorrelation(factor, "f")
    assert out.rows() == [(D2, pytest.approx(1.0), 3), (D3, pytest.approx(-1.0), 3)]


def test_diagnostics_name_a_missing_factor_column():
    with pytest.raises(ValueError, match=r"factor frame: missing column\(s\) \['momentum'\]"):
        dg.information_coefficient(_factor(D1, {"A": 1.0}), "momentum", FWD)


def _forward_returns_by_hand(prices: pl.DataFrame, schedule: list[date]) -> dict:
    """The docstring's definition, one (date, ticker) at a time."""
    px = prices.filter(pl.col("adj_close").is_not_null())
    out = {}
    schedule = sorted(set(schedule))
    for d0, d1 in zip(schedule[:-1], schedule[1:], strict=True):
        for t in px["ticker"].unique().to_list():
            own = px.filter(pl.col("ticker") == t).sort("date")
            before0, before1 = own.filter(pl.col("date") <= d0), own.filter(pl.col("date") <= d1)
            if before0.is_empty() or own["date"].max() < d0:
                continue  # not alive at d0
            out[(d0, t)] = before1["adj_close"][-1] / before0["adj_close"][-1] - 1.0
    return out


def test_forward_returns_match_the_definition_on_a_ragged_shuffled_market():
    rng = np.random.default_rng(4)
    days = [date(2020, 1, 1) + timedelta(days=i) for i in range(60)]
    rows = []
    for k in range(8):  # listings, delistings, gaps and null prices at random
        first, last = sorted(rng.choice(60, 2, replace=False))
        for i in range(first, last + 1):
            if rng.random() < 0.8:
                price = None if rng.random() < 0.1 else float(rng.uniform(5, 50))
                rows.append((f"T{k}", days[i], price))
    prices = pl.DataFrame(rows, schema=["ticker", "date", "adj_close"], orient="row")
    shuffled = prices.sample(fraction=1.0, shuffle=True, seed=1)
    schedule = [days[i] for i in (50, 3, 17, 18, 31, 44)] + [date(2019, 12, 1)]
    expected = _forward_returns_by_hand(prices, schedule)
    assert len(expected) > 10
    backwards = prices.sort("ticker", "date", descending=[False, True])  # tickers sorted only
    for frame in (prices, shuffled, backwards):
        out = dg.forward_returns(frame, schedule)
        got = {(d, t): r for d, t, r in out.iter_rows()}
        assert got.keys() == expected.keys()
        assert list(got.values()) == pytest.approx([expected[k] for k in got])

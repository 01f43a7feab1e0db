"""The lookahead audit: clean factor values pass; a factor that peeks at D's price is caught."""

from datetime import date, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quant_pipeline.config.strategies import load_strategies
from quant_pipeline.core.backtest.lookahead_audit import (
    audit_lookahead,
    compare_rows,
    price_window,
    sample_dates,
    truncate_membership,
)
from quant_pipeline.core.data import curation as curate
from quant_pipeline.core.data.calendar import rebalance_dates, trading_days
from quant_pipeline.core.factors.point_in_time import point_in_time_factor_values
from quant_pipeline.core.factors.values import factor_values
from quant_pipeline.core.strategies.scoring import score, with_country
from quant_pipeline.sources.demo import generate_market


@pytest.fixture(scope="module")
def market():
    m = generate_market(80, date(2016, 1, 1), date(2019, 6, 28), seed=11)
    prices = curate.curate_prices(m.prices, m.corporate_actions).prices
    return {
        "prices": prices,
        "vintages": curate.fundamentals_vintages(m.fundamentals),
        "securities": curate.curate_securities(m.securities),
        "membership": curate.curate_membership(m.membership),
        "dates": rebalance_dates(trading_days(prices), "monthly"),
        "specs": {n: s for n, s in load_strategies().items() if s.scored},
    }


def build(market, compute=factor_values):
    values = point_in_time_factor_values(
        market["prices"],
        market["vintages"],
        market["securities"],
        market["dates"],
        market["membership"],
        compute=compute,
    )
    with_countries = with_country(values, market["securities"])
    scores = pl.concat([score(with_countries, spec)[0] for spec in market["specs"].values()])
    return values, scores


def audit(market, values, scores, compute=factor_values, dates=None, **kept):
    """``audit_lookahead`` on the market (``kept``: its kept_values / kept_scores)."""
    return audit_lookahead(
        values,
        scores,
        market["prices"],
        market["vintages"],
        market["securities"],
        market["membership"],
        market["specs"],
        dates or sample_dates(market["dates"], 4),
        compute=compute,
        **kept,
    )


def peeking_factor_values(prices, fundamentals, securities, dates, membership=None, **kw):
    """factor_values, except momentum_12_1 = close ON D / price before D - 1: a lookahead."""
    values = factor_values(prices, fundamentals, securities, dates, membership, **kw)
    on_d = prices.select(
        "ticker", pl.col("date").alias("rebalance_date"), pl.col("close").alias("_d")
    )
    return (
        values.join(on_d, on=["ticker", "rebalance_date"], how="left")
        .with_columns(momentum_12_1=pl.col("_d") / pl.col("price") - 1.0)
        .drop("_d")
    )


def test_sample_dates_are_spread_evenly_and_deterministic():
    days = [date(2020, m, 1) for m in range(1, 11)]  # 10 dates
    # indices round(0), round(3), round(6), round(9)
    assert sample_dates(days, 4) == [days[0], days[3], days[6], days[9]]
    assert sample_dates(list(reversed(days)), 4) == sample_dates(days, 4)
    assert sample_dates(days, 1) == [days[-1]]
    assert sample_dates(days[:3], 4) == days[:3]
    with pytest.raises(ValueError, match=">= 1"):
        sample_dates(days, 0)


def test_the_clean_pipeline_passes_the_audit_on_the_demo_market(market):
    values, scores = build(market)
    result = audit(market, values, scores)
    assert result.passed, result.message()
    assert len(result.dates) == 4
    # Every stored row of the four dates was compared (values plus each strategy's scores).
    sampled = values.filter(pl.col("rebalance_date").is_in(result.dates)).height
    assert result.rows_compared == sampled * (1 + len(market["specs"]))
    assert result.message().startswith("lookahead audit passed")


def test_the_audit_lists_each_key_it_compared(market):
    values, scores = build(market)
    result = audit(market, values, scores)
    audited = result.audited
    assert audited["mismatches"].sum() == 0
    assert audited["rows_compared"].sum() == result.rows_compared
    on_values = audited.filter(pl.col("table") == "factors.values")
    assert on_values["rebalance_date"].to_list() == list(result.dates)
    assert on_values["strategy"].null_count() == len(result.dates)
    expected = (
        scores.filter(pl.col("rebalance_date").is_in(result.dates))
        .group_by("strategy", "rebalance_date")
        .len()
        .sort("strategy", "rebalance_date")
    )
    got = audited.filter(pl.col("table") == "factors.scores").sort("strategy", "rebalance_date")
    assert got.select(
        "strategy", "rebalance_date", pl.col("rows_compared").cast(pl.UInt32)
    ).rows() == (expected.rows())


def test_kept_dates_and_scores_are_not_compared_again(market):
    """An earlier audit of the same inputs stands: kept values are not recomputed (a peeking
    recomputation would fail if they were), their stored values stand in for it when a
    strategy's scores on the date are compared, and kept scores are not compared."""
    values, scores = build(market)
    dates = sample_dates(market["dates"], 4)
    first, rest = dates[0], dates[1:]
    names = sorted(market["specs"])
    changed = names[0]
    kept_scores = [(n, d) for d in dates for n in names if n != changed]
    # the peeking recomputation would fail on any date it recomputes but the first
    peeking = peeking_factor_values
    result = audit(
        market, values, scores, peeking, dates, kept_values=rest, kept_scores=kept_scores
    )
    assert result.passed, result.message()
    audited = result.audited
    assert audited.filter(pl.col("table") == "factors.values")["rebalance_date"].to_list() == [
        first
    ]
    on_scores = audited.filter(pl.col("table") == "factors.scores")
    assert set(on_scores["strategy"]) == {changed}
    assert sorted(on_scores["rebalance_date"]) == sorted(
        scores.filter((pl.col("strategy") == changed) & pl.col("rebalance_date").is_in(dates))[
            "rebalance_date"
        ].unique()
    )
    # a stored score that differs is still caught on a kept date
    tampered = scores.with_columns(
        score=pl.when((pl.col("strategy") == changed) & (pl.col("rebalance_date") == rest[-1]))
        .then(pl.col("score") + 1.0)
        .otherwise(pl.col("score"))
    )
    again = audit(market, values, tampered, dates=dates, kept_values=rest, kept_scores=kept_scores)
    assert not again.passed
    assert set(again.mismatches["rebalance_date"]) == {rest[-1]}
    # everything kept: nothing is compared
    every = [(n, d) for d in dates for n in names]
    none = audit(market, values, scores, peeking, dates, kept_values=dates, kept_scores=every)
    assert none.passed and none.rows_compared == 0 and none.audited.is_empty()


def test_a_factor_that_peeks_at_the_price_on_d_fails_with_date_ticker_and_column(market):
    values, scores = build(market, compute=peeking_factor_values)
    result = audit(market, values, scores, compute=peeking_factor_values)
    assert not result.passed
    # Independently: the first sampled date and alphabetically first ticker with a close on D
    # (the first sampled date is day one of the market: no rows, nothing to leak).
    stored = values.filter(
        pl.col("rebalance_date").is_in(result.dates) & pl.col("momentum_12_1").is_not_null()
    ).sort("rebalance_date", "ticker")
    first = stored["rebalance_date"][0]
    ticker, leaked = stored["ticker"][0], stored["momentum_12_1"][0]
    expected = (
        f"factors.values on {first} ticker {ticker} column momentum_12_1: "
        f"stored {pl.Series([leaked]).cast(pl.String)[0]} != recomputed null"
    )
    assert expected in result.message()
    assert result.message().startswith("lookahead audit failed")
    bad_columns = set(result.mismatches.filter(pl.col("table") == "factors.values")["column"])
    assert bad_columns == {"momentum_12_1"}
    # The leak reaches the scores of the strategy that uses momentum.
    assert result.mismatches.filter(pl.col("table") == "factors.scores").height > 0


def test_compare_rows_reports_missing_rows_null_differences_and_treats_nan_as_equal():
    stored = pl.DataFrame(
        {
            "rebalance_date": [date(2020, 1, 2)] * 3,
            "ticker": ["A", "B", "C"],
            "x": [1.0, float("nan"), None],
        }
    )
    recomputed = pl.DataFrame(
        {
            "rebalance_date": [date(2020, 1, 2)] * 3,
            "ticker": ["A", "B", "D"],
            "x": [None, float("nan"), 2.0],
        }
    )
    got = compare_rows(stored, recomputed, ["rebalance_date", "ticker"], "t")
    assert got.select("ticker", "column", "stored", "recomputed").rows() == [
        ("A", "x", "1.0", "null"),
        ("C", "<row>", "present", "absent"),
        ("D", "<row>", "absent", "present"),
    ]


def test_compare_rows_forgives_last_bit_rounding_but_not_a_real_difference():
    d = date(2020, 1, 2)
    stored = pl.DataFrame(
        {"rebalance_date": [d] * 3, "ticker": ["A", "B", "C"], "x": [0.982821676562252, 1e6, 0.0]}
    )
    recomputed = pl.DataFrame(
        {
            "rebalance_date": [d] * 3,
            "ticker": ["A", "B", "C"],
            # A: one ulp apart (a different summation order); B: 1e6 off by 1e-7 relative;
            # C: 0 vs 1e-9 (absolute difference above the tolerance near zero)
            "x": [0.9828216765622522, 1e6 + 0.1, 1e-9],
        }
    )
    got = compare_rows(stored, recomputed, ["rebalance_date", "ticker"], "t")
    assert got["ticker"].to_list() == ["B", "C"]


def test_membership_is_truncated_to_what_was_known_on_the_date():
    membership = pl.DataFrame(
        {
            "ticker": ["OLD", "LEFT", "LATER"],
            "start_date": [date(2010, 1, 1), date(2010, 1, 1), date(2021, 1, 1)],
            "end_date": [date(2019, 12, 31), date(2020, 6, 30), None],
        }
    )
    got = truncate_membership(membership, date(2020, 1, 2))
    # LATER had not joined; LEFT's exit (2020-06-30) was not known on 2020-01-02.
    assert got.rows() == [
        ("OLD", date(2010, 1, 1), date(2019, 12, 31)),
        ("LEFT", date(2010, 1, 1), None),
    ]


def test_the_price_window_keeps_every_row_a_trading_ticker_can_need_from_one_cut_date():
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(20)]  # d0..d19
    rows = [("A", d) for d in days]  # trades every day
    rows += [("B", d) for d in days[15:]]  # listed on d15
    rows += [("C", d) for d in days[:6]]  # stopped on d5: out of the grid long before D
    frame = pl.DataFrame(rows, schema={"ticker": pl.String, "date": pl.Date}, orient="row")
    # rows=3, max_stale_days=1: horizon = days[20 - 1 - 1 - LISTED_WINDOW 5] = d13; A's and B's
    # last 3 rows start on d17, so the cut is the horizon d13
    got = price_window(frame, max_stale_days=1, rows=3)
    assert got["date"].min() == days[13]
    assert got.height == 7 + 5  # A d13..d19, B d15..d19, nothing of C
    # a gappy ticker (d0, d10, d12, d19) needs its last 3 rows from d10: the cut moves back
    gappy = pl.DataFrame(
        {"ticker": "D", "date": [days[0], days[10], days[12], days[19]]},
    )
    got = price_window(pl.concat([frame, gappy]), max_stale_days=1, rows=3)
    assert got["date"].min() == days[10]
    assert got.filter(pl.col("ticker") == "D")["date"].to_list() == [days[10], days[12], days[19]]


@pytest.mark.parametrize("cut_day", [0, 1, 6, 14, 16, 19, 20])
def test_the_window_before_a_date_equals_the_window_of_the_rows_before_it(cut_day):
    """``before=D`` reads the frame in place: the same rows as cutting the frame at D first."""
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(21)]
    rows = [("A", d) for d in days[:20]] + [("B", d) for d in days[15:20]]
    rows += [("C", d) for d in days[:6]] + [("D", d) for d in (days[0], days[10], days[12])]
    frame = pl.DataFrame(rows, schema={"ticker": pl.String, "date": pl.Date}, orient="row")
    frame = frame.with_columns(close=pl.int_range(pl.len()).cast(pl.Float64))
    d = days[cut_day]
    expected = price_window(frame.filter(pl.col("date") < d), max_stale_days=1, rows=3)
    got = price_window(frame, max_stale_days=1, rows=3, before=d)
    assert_frame_equal(got, expected)
    assert got.filter(pl.col("date") >= d).is_empty()

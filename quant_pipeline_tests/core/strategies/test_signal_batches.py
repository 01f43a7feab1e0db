"""Signal strategies computed a batch of tickers at a time give exactly the whole-frame result.

``signal_weights`` runs each signal over batches of whole tickers and writes them straight into
the days x tickers grid (at 7,000 tickers the whole signals frame and its intermediate columns
were several GB). The oracle below is the whole-frame composition it replaced, built from the
same public pieces: the signal on all prices, events from it, entries masked by membership,
``signal_to_weights`` on the whole signals frame, ``changes_only``.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quant_pipeline.config.strategies import load_strategies
from quant_pipeline.core.data import curation as curate
from quant_pipeline.core.strategies import technical_signals as ts
from quant_pipeline.core.strategies.signal_weights import (
    EVENTS_SCHEMA,
    changes_only,
    member_on_day,
    signal_bars,
    signal_weights,
)
from quant_pipeline.core.strategies.spec import sector_name_limit
from quant_pipeline.core.strategies.target_weights import WEIGHTS_SCHEMA
from quant_pipeline.sources.demo import generate_market

SIGNAL_STRATEGIES = ["canslim", "cup_and_handle", "livermore_breakout", "trend_following"]


@pytest.fixture(scope="module")
def market() -> dict[str, pl.DataFrame]:
    m = generate_market(80, date(2012, 1, 2), date(2017, 12, 29), seed=42)
    prices = curate.curate_prices(m.prices, m.corporate_actions).prices
    rebalance = prices.select(pl.col("date").unique().sort().gather_every(21).alias("d"))["d"]
    rng = np.random.default_rng(3)
    tickers = prices["ticker"].unique().sort()
    values = pl.DataFrame(
        {
            "rebalance_date": np.repeat(rebalance.to_numpy(), tickers.len()),
            "ticker": np.tile(tickers.to_numpy(), rebalance.len()),
            "quarterly_earnings_growth": rng.normal(0.05, 0.2, rebalance.len() * tickers.len()),
        }
    ).with_columns(
        pl.col("rebalance_date").cast(pl.Date),
        # a growth figure moves once a quarter, as reported figures do
        pl.col("quarterly_earnings_growth")
        .first()
        .over("ticker", pl.col("rebalance_date").dt.quarter()),
    )
    return {
        "prices": prices.select(
            "ticker", "date", "open", "high", "low", "close", "adj_close", "volume"
        ),
        "membership": curate.curate_membership(m.membership),
        "sectors": curate.curate_securities(m.securities).select("ticker", "sector"),
        "values": values,
    }


def whole_frame_signal_weights(prices, spec, membership, sectors, fundamentals_values):
    """``signal_weights`` as it was before batching (the oracle)."""
    rules = spec.signal
    signal = ts.build_signal(rules.signal, rules.param_dict)
    if rules.signal == "canslim" and rules.use_earnings and fundamentals_values is not None:
        signals = signal(prices, fundamentals_values)
    else:
        signals = signal(prices)
    exit_starts = pl.col("exit") & ~pl.col("exit").shift(1, fill_value=False).over("ticker")
    events = (
        signals.sort("ticker", "date")
        .filter(pl.col("entry") | exit_starts)
        .with_columns(strategy=pl.lit(spec.name))
        .select([pl.col(c).cast(t) for c, t in EVENTS_SCHEMA.items()])
    )
    signals = signals.with_columns(
        pl.col("entry") & member_on_day(signals.select("ticker", "date"), membership)
    )
    capped = rules.max_sector_weight is not None
    raw = ts.signal_to_weights(
        signals,
        rules.max_positions,
        prices=prices if rules.stop_loss is not None else None,
        stop_loss=rules.stop_loss,
        sizing=rules.sizing,
        sectors=sectors if capped else None,
        max_per_sector=(
            sector_name_limit(rules.max_sector_weight, rules.max_positions) if capped else None
        ),
    )
    weights = (
        changes_only(raw)
        .join(sectors, on="ticker", how="left")
        .with_columns(
            strategy=pl.lit(spec.name), score=pl.col("signal_strength"), rank=pl.lit(None, pl.Int64)
        )
        .select([pl.col(c).cast(t) for c, t in WEIGHTS_SCHEMA.items()])
        .sort("rebalance_date", "ticker")
    )
    return weights, events


@pytest.mark.parametrize("name", SIGNAL_STRATEGIES)
def test_batched_signal_weights_equal_the_whole_frame_computation(market, name, monkeypatch):
    # batches of ~700 rows (a few tickers each), and cup-and-handle's own batches smaller still
    monkeypatch.setattr(ts, "SIGNAL_BATCH_ROWS", 700)
    monkeypatch.setattr(ts, "_CUP_BATCH_ROWS", 350)
    spec = load_strategies()[name]
    args = (market["membership"], market["sectors"], market["values"])
    expected_weights, expected_events = whole_frame_signal_weights(market["prices"], spec, *args)
    shared = signal_bars(market["prices"], market["membership"])
    from_batches = signal_bars(_price_batches(market["prices"]), market["membership"])
    # one strategy alone, or bars shared by several, prepared whole or from ticker batches
    for prices in (market["prices"], shared, from_batches):
        weights, events = signal_weights(
            prices,
            spec,
            membership=market["membership"],
            sectors=market["sectors"],
            fundamentals_values=market["values"],
        )
        assert_frame_equal(weights, expected_weights)
        assert_frame_equal(events, expected_events)
    # the step's threads pass smaller batches: the same weights and events
    weights, events = signal_weights(
        shared,
        spec,
        sectors=market["sectors"],
        fundamentals_values=market["values"],
        batch_rows=175,
    )
    assert_frame_equal(weights, expected_weights)
    assert_frame_equal(events, expected_events)
    assert expected_events["entry"].any(), "the strategy never fires on this market"
    assert expected_weights.height > 0


def _price_batches(prices: pl.DataFrame, rows: int = 3_000) -> list[pl.DataFrame]:
    """``prices`` as ``Warehouse.read_batches`` gives them: runs of whole tickers."""
    counts = prices.group_by("ticker").agg(pl.len().alias("rows"))
    runs = curate.ticker_batches(counts, rows)
    assert len(runs) > 3
    return [prices.filter(pl.col("ticker").is_in(run)) for run in runs]


def changing_membership(members: pl.DataFrame, joins: date, leaves: date) -> pl.DataFrame:
    """``members`` (curated.membership) where every third ticker joins the index on ``joins``
    and every fifth leaves it on ``leaves``: a membership that changes over the window."""
    return (
        members.with_row_index("_n")
        .with_columns(
            start_date=pl.when(pl.col("_n") % 3 == 0)
            .then(pl.lit(joins))
            .otherwise(pl.col("start_date")),
            end_date=pl.when(pl.col("_n") % 5 == 0)
            .then(pl.lit(leaves))
            .otherwise(pl.col("end_date")),
        )
        .drop("_n")
    )


@pytest.mark.parametrize("order", ["ticker order", "reversed, rows shuffled"])
def test_bars_from_ticker_batches_equal_the_bars_of_the_whole_prices(market, order):
    prices = market["prices"]
    membership = changing_membership(market["membership"], date(2015, 1, 2), date(2016, 6, 30))
    batches = _price_batches(prices)
    if order != "ticker order":
        batches = [b.sample(fraction=1.0, shuffle=True, seed=1) for b in reversed(batches)]
    whole = signal_bars(prices, membership)
    batched = signal_bars(iter(batches), membership)
    assert_frame_equal(batched.adjusted, whole.adjusted)
    assert_frame_equal(batched.axes.dates.to_frame(), whole.axes.dates.to_frame())
    assert batched.axes.tickers.equals(whole.axes.tickers)
    assert np.array_equal(batched.last_row, whole.last_row)
    assert batched.member.equals(whole.member) and not whole.member.all()
    assert np.array_equal(batched.stop_close, whole.stop_close, equal_nan=True)
    # without membership or stops
    plain = signal_bars(iter(batches), None, stops=False)
    assert plain.member is None and plain.stop_close is None
    assert_frame_equal(plain.adjusted, whole.adjusted)


def test_grid_axes_number_days_and_tickers_in_sorted_order_whatever_the_row_order():
    frame = pl.DataFrame(
        {
            "ticker": ["B", "A", "B", "C", "A"],
            "date": [
                date(2020, 1, 6),
                date(2020, 1, 2),
                date(2020, 1, 2),
                date(2020, 1, 3),
                date(2020, 1, 6),
            ],
        }
    )
    for rows in (frame, frame.sort("ticker", "date")):
        axes = ts.grid_axes(rows)
        assert axes.dates.to_list() == [date(2020, 1, 2), date(2020, 1, 3), date(2020, 1, 6)]
        assert axes.tickers.to_list() == ["A", "B", "C"]
        assert axes.dates.gather(axes.d).to_list() == rows["date"].to_list()
        assert axes.tickers.gather(axes.k).to_list() == rows["ticker"].to_list()

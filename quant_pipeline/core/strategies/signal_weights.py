"""Signal strategies (kind ``signal``): a technical signal on daily prices to target weights.

Glue between a strategy file's ``signal:`` section and core.strategies.technical_signals: compute
the signal on ``curated.prices``, allow entries only for index members on that day (when membership
is known), turn entries, exits and stops into daily holdings with
:func:`core.strategies.technical_signals.signal_to_weights`, and keep only the days on which the set
of names held changes (the backtest holds the book, with its weights drifting, between those days;
on a change the share-based backtest sells the exits and buys the new names with the freed cash,
leaving the other holdings as they are: ``TradingModel.resize_held`` is false for this kind).

Timing (see docs/research.md): a signal at t uses bars up to t's close; the holdings decided
after t's close carry ``rebalance_date`` = t+1 and trade at t+1's close.
"""

from __future__ import annotations

import polars as pl

from quant_pipeline.core.strategies.spec import StrategySpec
from quant_pipeline.core.strategies.target_weights import WEIGHTS_SCHEMA
from quant_pipeline.core.strategies.technical_signals import build_signal, signal_to_weights

EVENTS_SCHEMA: dict[str, pl.DataType] = {
    "strategy": pl.String(),
    "ticker": pl.String(),
    "date": pl.Date(),
    "entry": pl.Boolean(),
    "exit": pl.Boolean(),
    "signal_strength": pl.Float64(),
}


def member_on_day(frame: pl.DataFrame, membership: pl.DataFrame | None) -> pl.Series:
    """Boolean per row of ``frame`` (ticker, date): inside a membership interval on that date.

    ``membership``: curated.membership (ticker, start_date, end_date null = still a member).
    None or empty means membership is unknown: every row passes.
    """
    if membership is None or membership.is_empty():
        return pl.Series("member", [True] * frame.height, dtype=pl.Boolean)
    intervals = membership.select(
        "ticker", pl.col("start_date").cast(pl.Date), pl.col("end_date").cast(pl.Date)
    ).sort("start_date")
    return (
        frame.select("ticker", "date")
        .with_row_index("_i")
        .sort("date")
        .join_asof(
            intervals,
            left_on="date",
            right_on="start_date",
            by="ticker",
            strategy="backward",
            check_sortedness=False,
        )
        .sort("_i")
        .select(
            (
                pl.col("start_date").is_not_null()
                & (pl.col("end_date").is_null() | (pl.col("end_date") >= pl.col("date")))
            ).alias("member")
        )
        .to_series()
    )


def changes_only(weights: pl.DataFrame) -> pl.DataFrame:
    """Keep the dates whose set of held names (weight > 0) differs from the previous date's.

    ``weights``: (rebalance_date, ticker, weight, ...) from signal_to_weights. The first date is
    kept. Dates in between carry the same book, which the backtest keeps holding anyway.
    """
    if weights.is_empty():
        return weights
    books = (
        weights.filter(pl.col("weight") > 0)
        .group_by("rebalance_date")
        .agg(pl.col("ticker").sort().str.join(",").alias("_book"))
    )
    keep = (
        weights.select(pl.col("rebalance_date").unique().sort())
        .join(books, on="rebalance_date", how="left")
        .with_columns(pl.col("_book").fill_null(""))
        .filter(pl.col("_book").ne_missing(pl.col("_book").shift(1)))
    )
    return weights.join(keep.select("rebalance_date"), on="rebalance_date", how="semi")


def signal_weights(
    prices: pl.DataFrame,
    spec: StrategySpec,
    *,
    membership: pl.DataFrame | None = None,
    sectors: pl.DataFrame | None = None,
    fundamentals_values: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(target weights, signal events) of a ``signal`` strategy.

    ``prices``: curated.prices (ticker, date, open, high, low, close, adj_close, volume).
    ``sectors``: (ticker, sector) for the weights' sector column. ``fundamentals_values``:
    factors.values (rebalance_date, ticker, quarterly_earnings_growth), used by ``canslim`` only
    when ``use_earnings`` is true. Returns target weights in portfolio.target_weights' schema
    (score = signal strength, rank null, weights sum to <= 1, weight-0 rows sell) and the
    events: rows where an entry fires or an exit condition starts (true at t, not at t-1),
    before the membership filter on entries.
    """
    rules = spec.signal
    if rules is None:
        raise ValueError(f"strategy {spec.name!r} is not of kind signal")
    signal = build_signal(rules.signal, rules.param_dict)
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
    raw = signal_to_weights(
        signals,
        rules.max_positions,
        prices=prices if rules.stop_loss is not None else None,
        stop_loss=rules.stop_loss,
        sizing=rules.sizing,  # type: ignore[arg-type]
    )
    weights = changes_only(raw)
    if sectors is not None:
        weights = weights.join(sectors.select("ticker", "sector"), on="ticker", how="left")
    else:
        weights = weights.with_columns(sector=pl.lit(None, pl.String))
    weights = (
        weights.with_columns(
            strategy=pl.lit(spec.name),
            score=pl.col("signal_strength"),
            rank=pl.lit(None, pl.Int64),
        )
        .select([pl.col(c).cast(t) for c, t in WEIGHTS_SCHEMA.items()])
        .sort("rebalance_date", "ticker")
    )
    return weights, events

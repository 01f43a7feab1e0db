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

from collections.abc import Iterable

import polars as pl

from quant_pipeline.core.data.frames import is_sorted_by
from quant_pipeline.core.strategies.spec import StrategySpec, sector_name_limit
from quant_pipeline.core.strategies.target_weights import CAP_EPS, REPORT_SCHEMA, WEIGHTS_SCHEMA
from quant_pipeline.core.strategies.technical_signals import (
    SignalBars,
    batched_signal_weights,
    build_signal,
    prepare_signal_bars,
)

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
        return pl.repeat(True, frame.height, dtype=pl.Boolean, eager=True).alias("member")
    intervals = membership.select(
        "ticker", pl.col("start_date").cast(pl.Date), pl.col("end_date").cast(pl.Date)
    ).sort("ticker", "start_date")
    rows = frame.select("ticker", "date")
    # an as-of join by ticker needs the dates in order within each ticker only: bars in
    # (ticker, date) order join as they are (sorting 15M rows by date and back cost 2 s)
    in_order = is_sorted_by(rows, ["ticker", "date"])
    if not in_order:
        rows = rows.with_row_index("_i").sort("ticker", "date")
    joined = rows.join_asof(
        intervals,
        left_on="date",
        right_on="start_date",
        by="ticker",
        strategy="backward",
        check_sortedness=False,
    )
    if not in_order:
        joined = joined.sort("_i")
    return joined.select(
        (
            pl.col("start_date").is_not_null()
            & (pl.col("end_date").is_null() | (pl.col("end_date") >= pl.col("date")))
        ).alias("member")
    ).to_series()


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


def signal_bars(
    prices: pl.DataFrame | Iterable[pl.DataFrame],
    membership: pl.DataFrame | None = None,
    *,
    stops: bool = True,
) -> SignalBars:
    """The bars every signal strategy of a run shares, prepared once from curated.prices
    (ticker, date, open, high, low, close, adj_close, volume; whole, or in batches of whole
    tickers) and curated.membership (None or empty: membership unknown, every entry allowed):
    adjusted bars, their days x tickers grid, membership per row and, unless ``stops=False``,
    the stop-loss prices (see :class:`core.strategies.technical_signals.SignalBars`). The
    prices are not kept (at 7,000 tickers each copy of the bars is about 1 GB)."""
    if membership is None or membership.is_empty():
        return prepare_signal_bars(prices, None, stops=stops)
    return prepare_signal_bars(
        prices, stops=stops, member_of=lambda rows: member_on_day(rows, membership)
    )


def signal_weights(
    prices: pl.DataFrame | SignalBars,
    spec: StrategySpec,
    *,
    membership: pl.DataFrame | None = None,
    sectors: pl.DataFrame | None = None,
    fundamentals_values: pl.DataFrame | None = None,
    batch_rows: int | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(target weights, signal events) of a ``signal`` strategy.

    ``prices``: curated.prices (ticker, date, open, high, low, close, adj_close, volume), or
    its :func:`signal_bars` when several strategies run on the same prices (``membership`` is
    then the one given to :func:`signal_bars` and this argument is ignored).
    ``sectors``: (ticker, sector) for the weights' sector column. ``fundamentals_values``:
    factors.values (rebalance_date, ticker, quarterly_earnings_growth), used by ``canslim`` only
    when ``use_earnings`` is true. ``batch_rows``: rows of bars the signal computes at once
    (see ``batched_signal_weights``; the result does not depend on it). Returns target weights
    in portfolio.target_weights' schema
    (score = signal strength, rank null, weights sum to <= 1, weight-0 rows sell) and the
    events: rows where an entry fires or an exit condition starts (true at t, not at t-1),
    before the membership filter on entries.
    """
    rules = spec.signal
    if rules is None:
        raise ValueError(f"strategy {spec.name!r} is not of kind signal")
    signal = build_signal(rules.signal, rules.param_dict)
    if isinstance(prices, SignalBars):
        bars = prices
    else:
        bars = signal_bars(prices, membership, stops=rules.stop_loss is not None)
    capped = rules.max_sector_weight is not None
    if capped and sectors is None:
        raise ValueError(
            f"strategy {spec.name!r}: signal.max_sector_weight needs the sectors frame "
            "(curated.securities ticker, sector)"
        )
    earnings = rules.signal == "canslim" and rules.use_earnings
    raw, fired = batched_signal_weights(
        signal,
        bars,
        rules.max_positions,
        stop_loss=rules.stop_loss,
        sizing=rules.sizing,  # type: ignore[arg-type]
        sectors=sectors if capped else None,
        max_per_sector=(
            sector_name_limit(rules.max_sector_weight, rules.max_positions) if capped else None
        ),
        fundamentals_values=fundamentals_values if earnings else None,
        batch_rows=batch_rows,
    )
    events = fired.with_columns(strategy=pl.lit(spec.name)).select(
        [pl.col(c).cast(t) for c, t in EVENTS_SCHEMA.items()]
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


def signal_constraint_report(weights: pl.DataFrame, spec: StrategySpec) -> pl.DataFrame:
    """portfolio.constraint_report rows of a ``signal`` strategy, one per date of ``weights``.

    ``weights``: its portfolio.target_weights rows (rebalance_date, ticker, sector, weight).
    n_selected = names with weight > 0; target_n = max_positions; max_sector_weight = the
    largest sum of target weights of one sector bucket (null sector = one bucket) — a share of
    the whole book, cash included, as for staggered strategies; n_eligible is null (a signal
    strategy has no ranked universe: its entries are in factors.signal_events).
    """
    rules = spec.signal
    if rules is None:
        raise ValueError(f"strategy {spec.name!r} is not of kind signal")
    cap = rules.max_sector_weight
    held = weights.filter(pl.col("weight") > 0).with_columns(
        _bucket=pl.col("sector").fill_null("<unknown>")
    )
    per_date = (
        held.group_by("rebalance_date", "_bucket")
        .agg(_w=pl.col("weight").sum(), _k=pl.len())
        .group_by("rebalance_date")
        .agg(n_selected=pl.col("_k").sum(), max_sector_weight=pl.col("_w").max())
    )
    cap_lit = pl.lit(cap, pl.Float64)
    over = (pl.col("max_sector_weight") > cap_lit + CAP_EPS).fill_null(False)
    limit = sector_name_limit(cap, rules.max_positions)
    rule = f"at most {limit} names per sector" if cap is not None else "no sector cap"
    return (
        weights.select(pl.col("rebalance_date").unique())
        .join(per_date, on="rebalance_date", how="left")
        .with_columns(pl.col("n_selected").fill_null(0))
        .with_columns(
            strategy=pl.lit(spec.name),
            n_eligible=pl.lit(None, pl.Int64),
            target_n=pl.lit(rules.max_positions, pl.Int64),
            sector_cap=cap_lit,
            cap_met=~over,
            note=pl.when(over)
            .then(
                pl.format(
                    "{} names held ({}); largest sector over the cap", "n_selected", pl.lit(rule)
                )
            )
            .when(pl.col("n_selected") < rules.max_positions)
            .then(
                pl.format(
                    "{} of {} positions held ({})",
                    "n_selected",
                    pl.lit(rules.max_positions),
                    pl.lit(rule),
                )
            )
            .otherwise(pl.lit("")),
        )
        .select([pl.col(c).cast(t) for c, t in REPORT_SCHEMA.items()])
        .sort("rebalance_date")
    )

"""Suspect moves: one-day price moves too large to take as returns without a corporate action.

A spin-off (BAX -44% on 2015-07-01 in the S&P files) or a share dividend (DISCA -51% on
2014-08-07) in price-only data is booked as a loss by every backtest. Nothing in the prices
alone tells such a day from a crash, so they are listed (``curated.suspect_moves``) for a person
to check, counted in ``backtest.labels`` and named in the tear sheet of a strategy that held
one, and a corporate-actions file (``spinoff`` / ``stock_dividend`` rows) corrects them.

Pure polars; looks at the whole price history (a list of past days, not a rebalance input).
"""

from __future__ import annotations

import polars as pl

from quant_pipeline.core.data.frames import is_sorted_by, require_columns

SUSPECT_MOVES_TABLE = "curated.suspect_moves"
DEFAULT_THRESHOLD = 0.4  # |daily return| >= 40%: BAX's spin-off and DISCA's share dividend
SUSPECT_MOVES_SCHEMA: dict[str, pl.DataType] = {
    "ticker": pl.String(),
    "date": pl.Date(),
    "size": pl.Float64(),
    "previous_close": pl.Float64(),
    "close": pl.Float64(),
    "threshold": pl.Float64(),
}
HELD_THROUGH_SCHEMA: dict[str, pl.DataType] = {
    "strategy": pl.String(),
    "ticker": pl.String(),
    "entry_date": pl.Date(),
    "exit_date": pl.Date(),
    "date": pl.Date(),
    "size": pl.Float64(),
}


def suspect_moves(
    prices: pl.DataFrame, actions: pl.DataFrame | None, threshold: float = DEFAULT_THRESHOLD
) -> pl.DataFrame:
    """The ``curated.suspect_moves`` table (``SUSPECT_MOVES_SCHEMA``), sorted by ticker, date.

    ``prices``: curated.prices (ticker, date, close, daily_return). ``actions``: curated
    corporate actions (ticker, date, action, value) or None. A row is a suspect move when
    ``|daily_return| >= threshold`` and the ticker has no corporate action of any kind dated after
    its previous trading row and on or before the row (an action on a non-trading day belongs to
    the next trading row). ``size`` is the daily return; ``previous_close`` / ``close`` the
    as-given closes of the two days.
    """
    if not threshold > 0:
        raise ValueError(f"suspect_moves: threshold must be > 0, got {threshold}")
    require_columns(prices, ("ticker", "date", "close", "daily_return"), "curated.prices")
    rows = prices.select("ticker", "date", "close", "daily_return")
    if not is_sorted_by(rows, ["ticker", "date"]):  # curated.prices is read in this order
        rows = rows.sort("ticker", "date")
    # in (ticker, date) order the previous row of the ticker is the row above unless the
    # ticker changes there (cheaper than a window over every ticker)
    run = pl.col("ticker").rle_id()
    same = run == run.shift(1)
    rows = (
        rows.lazy()
        .with_columns(
            previous_close=pl.when(same).then(pl.col("close").shift(1)),
            _previous_date=pl.when(same).then(pl.col("date").shift(1)),
        )
        .filter(pl.col("daily_return").abs() >= threshold)
        .collect()
    )
    if actions is not None and actions.height and rows.height:
        require_columns(actions, ("ticker", "date"), "curated.corporate_actions")
        on_file = (
            rows.select("ticker", "date", "_previous_date")
            .join(actions.select("ticker", pl.col("date").alias("_action")), on="ticker")
            .filter(
                (pl.col("_action") > pl.col("_previous_date"))
                & (pl.col("_action") <= pl.col("date"))
            )
            .select("ticker", "date")
        )
        rows = rows.join(on_file, on=["ticker", "date"], how="anti")
    return rows.select(
        pl.col("ticker").cast(pl.String),
        pl.col("date").cast(pl.Date),
        pl.col("daily_return").cast(pl.Float64).alias("size"),
        pl.col("previous_close").cast(pl.Float64),
        pl.col("close").cast(pl.Float64),
        pl.lit(float(threshold), dtype=pl.Float64).alias("threshold"),
    ).sort("ticker", "date")


def held_through(trades: pl.DataFrame, moves: pl.DataFrame) -> pl.DataFrame:
    """Positions that earned a suspect move (``HELD_THROUGH_SCHEMA``), by strategy, date, ticker.

    ``trades``: backtest.trades (strategy, ticker, entry_date, exit_date; null exit = still
    open). ``moves``: :func:`suspect_moves`. A position earns day d's return when ``entry_date <
    d`` (it was bought at the close of entry_date) and ``d <= exit_date`` (or it is still open).
    """
    require_columns(trades, ("strategy", "ticker", "entry_date", "exit_date"), "backtest.trades")
    require_columns(moves, ("ticker", "date", "size"), "curated.suspect_moves")
    through = (
        trades.select("strategy", "ticker", "entry_date", "exit_date")
        .join(moves.select("ticker", "date", "size"), on="ticker")
        .filter(
            (pl.col("entry_date") < pl.col("date"))
            & (pl.col("exit_date").is_null() | (pl.col("date") <= pl.col("exit_date")))
        )
    )
    return through.select([pl.col(c).cast(t) for c, t in HELD_THROUGH_SCHEMA.items()]).sort(
        "strategy", "date", "ticker"
    )

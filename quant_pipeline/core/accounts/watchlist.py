"""The watchlist: symbols a person follows, with their latest price, scores, signals and holdings.

Pure polars. :func:`watchlist_status` takes the watched symbols and the rows of the warehouse
tables for those tickers, and returns one row per (symbol, strategy) — plus one row with a null
strategy for a symbol no strategy has seen — with the latest values of each::

    symbols:  symbol | added_at                                    (watchlist.symbols)
    prices:   ticker | date | close                                (curated.prices)
    scores:   strategy | rebalance_date | ticker | eligible | score | rank   (factors.scores)
    weights:  strategy | rebalance_date | ticker | weight          (portfolio.target_weights)
    signals:  strategy | ticker | date | entry | exit              (factors.signal_events)

"Latest" is per strategy: the strategy's last rebalance date (or last signal date), not the
symbol's, so a symbol that dropped out of a strategy's book shows ``held = false`` at that date.
``signal_state`` is ``entry`` / ``exit`` when the strategy's last signal day fired one for the
symbol, ``holding`` when an entry came after the last exit, else ``none``; null for factor
strategies (no signal events).
"""

from __future__ import annotations

import re

import polars as pl

SYMBOL_PATTERN = re.compile(r"^[A-Z0-9^][A-Z0-9.\-=^]{0,19}$")

STATUS_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "added_at": pl.Datetime("us", "UTC"),
    "last_date": pl.Date(),
    "last_close": pl.Float64(),
    "strategy": pl.String(),
    "as_of": pl.Date(),
    "eligible": pl.Boolean(),
    "score": pl.Float64(),
    "rank": pl.Int64(),
    "weight": pl.Float64(),
    "held": pl.Boolean(),
    "signal_state": pl.String(),
    "last_signal_date": pl.Date(),
}


class WatchlistError(ValueError):
    """Symbols that cannot be watched, each named with the rule it breaks."""


def normalize_symbols(raw: list[str]) -> list[str]:
    """Trimmed, upper-case, de-duplicated symbols in the order given; raises
    :class:`WatchlistError` naming every symbol that is not 1-20 of ``A-Z 0-9 . - = ^``."""
    out: list[str] = []
    bad: list[str] = []
    for text in raw:
        symbol = text.strip().upper()
        if not SYMBOL_PATTERN.match(symbol):
            bad.append(repr(text))
        elif symbol not in out:
            out.append(symbol)
    if bad:
        raise WatchlistError(
            f"not a ticker symbol (1-20 characters of A-Z, 0-9, '.', '-', '=', '^'): "
            f"{', '.join(bad)}"
        )
    return out


def _latest_per_strategy(frame: pl.DataFrame, date_col: str) -> pl.DataFrame:
    """Rows of ``frame`` on each strategy's last ``date_col``."""
    return frame.filter(pl.col(date_col) == pl.col(date_col).max().over("strategy"))


def _signal_states(signals: pl.DataFrame) -> pl.DataFrame:
    """(strategy, ticker, signal_state, last_signal_date) from the signal events."""
    if signals.is_empty():
        return pl.DataFrame(
            schema={
                "strategy": pl.String,
                "ticker": pl.String,
                "signal_state": pl.String,
                "last_signal_date": pl.Date,
            }
        )
    events = signals.filter(pl.col("entry") | pl.col("exit"))
    last_day = signals.group_by("strategy").agg(pl.col("date").max().alias("_last"))
    per_ticker = events.group_by("strategy", "ticker").agg(
        pl.col("date").filter(pl.col("entry")).max().alias("_entry"),
        pl.col("date").filter(pl.col("exit")).max().alias("_exit"),
        pl.col("date").max().alias("last_signal_date"),
    )
    state = (
        pl.when(pl.col("last_signal_date") == pl.col("_last"))
        .then(
            pl.when(pl.col("_exit") == pl.col("_last"))
            .then(pl.lit("exit"))
            .otherwise(pl.lit("entry"))
        )
        .when(
            pl.col("_entry").is_not_null()
            & (pl.col("_exit").is_null() | (pl.col("_entry") > pl.col("_exit")))
        )
        .then(pl.lit("holding"))
        .otherwise(pl.lit("none"))
    )
    return (
        per_ticker.join(last_day, on="strategy")
        .with_columns(state.alias("signal_state"))
        .select("strategy", "ticker", "signal_state", "last_signal_date")
    )


def watchlist_status(
    symbols: pl.DataFrame,
    prices: pl.DataFrame,
    scores: pl.DataFrame,
    weights: pl.DataFrame,
    signals: pl.DataFrame,
) -> pl.DataFrame:
    """One row per (symbol, strategy) in ``STATUS_SCHEMA`` (see the module docstring)."""
    last_price = (
        prices.sort("ticker", "date")
        .group_by("ticker", maintain_order=True)
        .agg(pl.col("date").last().alias("last_date"), pl.col("close").last().alias("last_close"))
        .rename({"ticker": "symbol"})
    )
    scored = _latest_per_strategy(scores, "rebalance_date").select(
        "strategy",
        pl.col("ticker").alias("symbol"),
        pl.col("rebalance_date").alias("as_of"),
        "eligible",
        "score",
        pl.col("rank").cast(pl.Int64),
    )
    book_dates = weights.group_by("strategy").agg(pl.col("rebalance_date").max().alias("_book"))
    held = (
        _latest_per_strategy(weights, "rebalance_date")
        .filter(pl.col("weight") > 0)
        .select("strategy", pl.col("ticker").alias("symbol"), "weight")
    )
    states = _signal_states(signals).rename({"ticker": "symbol"})
    strategies = pl.concat(
        [
            scored.select("strategy", "symbol"),
            held.select("strategy", "symbol"),
            states.select("strategy", "symbol"),
        ]
    ).unique()
    rows = (
        symbols.select("symbol", "added_at")
        .join(strategies, on="symbol", how="left")
        .join(last_price, on="symbol", how="left")
        .join(scored, on=["strategy", "symbol"], how="left")
        .join(held, on=["strategy", "symbol"], how="left")
        .join(states, on=["strategy", "symbol"], how="left")
        .join(book_dates, on="strategy", how="left")
        .with_columns(
            pl.col("as_of").fill_null(pl.col("_book")),
            pl.when(pl.col("_book").is_not_null())
            .then(pl.col("weight").is_not_null())
            .alias("held"),
        )
    )
    return (
        rows.select(list(STATUS_SCHEMA))
        .cast(STATUS_SCHEMA)  # type: ignore[arg-type]
        .sort("symbol", "strategy", nulls_last=True)
    )

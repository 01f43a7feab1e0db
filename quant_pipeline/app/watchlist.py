"""The watchlist kept in the warehouse, and ``quant-pipeline watch add|remove|list``.

``watchlist.symbols`` (symbol, added_at) holds what a person watches; the ``watchlist/status``
asset and ``watch list`` give each symbol its latest price, scores per strategy, signal state and
whether a strategy holds it (:func:`quant_pipeline.core.accounts.watchlist.watchlist_status`).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import polars as pl

from quant_pipeline.core.accounts.watchlist import (
    STATUS_SCHEMA,
    normalize_symbols,
    watchlist_status,
)
from quant_pipeline.storage.warehouse import Warehouse

SYMBOLS_TABLE = "watchlist.symbols"
SYMBOLS_SCHEMA = {"symbol": pl.String(), "added_at": pl.Datetime("us", "UTC")}
# table -> columns read for the watched tickers
INPUTS = {
    "curated.prices": ["ticker", "date", "close"],
    "factors.scores": ["strategy", "rebalance_date", "ticker", "eligible", "score", "rank"],
    "portfolio.target_weights": ["strategy", "rebalance_date", "ticker", "weight"],
    "factors.signal_events": ["strategy", "ticker", "date", "entry", "exit"],
}


def read_symbols(warehouse: Warehouse) -> pl.DataFrame:
    """The watched symbols (empty when nothing was ever added)."""
    if not warehouse.has_table(SYMBOLS_TABLE):
        return pl.DataFrame(schema=SYMBOLS_SCHEMA)
    return warehouse.read_table(SYMBOLS_TABLE).cast(SYMBOLS_SCHEMA).sort("symbol")  # type: ignore[arg-type]


def add_symbols(warehouse: Warehouse, symbols: list[str], now: datetime | None = None) -> list[str]:
    """Add ``symbols`` (normalised); return the ones that were new. Re-adding keeps added_at."""
    wanted = normalize_symbols(symbols)
    current = read_symbols(warehouse)
    new = [s for s in wanted if s not in set(current["symbol"])]
    stamp = now or datetime.now(UTC)
    added = pl.DataFrame({"symbol": new, "added_at": [stamp] * len(new)}, schema=SYMBOLS_SCHEMA)
    warehouse.replace_table(SYMBOLS_TABLE, pl.concat([current, added]).sort("symbol"))
    return new


def remove_symbols(warehouse: Warehouse, symbols: list[str]) -> list[str]:
    """Remove ``symbols``; return the ones that were watched (the others are ignored)."""
    wanted = set(normalize_symbols(symbols))
    current = read_symbols(warehouse)
    gone = sorted(wanted & set(current["symbol"]))
    warehouse.replace_table(SYMBOLS_TABLE, current.filter(~pl.col("symbol").is_in(gone)))
    return gone


def status(warehouse: Warehouse) -> pl.DataFrame:
    """The status of every watched symbol from the warehouse as it is now (read-only)."""
    symbols = read_symbols(warehouse)
    tickers = symbols["symbol"].to_list()
    frames = {}
    for table, columns in INPUTS.items():
        if tickers and warehouse.has_table(table):
            frames[table] = warehouse.read_table(
                table, columns=columns, filters={"ticker": tickers}
            )
        else:
            frames[table] = pl.DataFrame(schema=_empty_schema(table))
    return watchlist_status(
        symbols,
        frames["curated.prices"],
        frames["factors.scores"],
        frames["portfolio.target_weights"],
        frames["factors.signal_events"],
    )


def _empty_schema(table: str) -> dict[str, pl.DataType]:
    types = {
        "ticker": pl.String(),
        "strategy": pl.String(),
        "date": pl.Date(),
        "rebalance_date": pl.Date(),
        "close": pl.Float64(),
        "eligible": pl.Boolean(),
        "score": pl.Float64(),
        "rank": pl.Int64(),
        "weight": pl.Float64(),
        "entry": pl.Boolean(),
        "exit": pl.Boolean(),
    }
    return {c: types[c] for c in INPUTS[table]}


def add_parser(sub: argparse._SubParsersAction) -> None:
    watch = sub.add_parser("watch", help="keep a watchlist: add, remove or list symbols")
    watch.add_argument("action", choices=["add", "remove", "list"])
    watch.add_argument("symbols", nargs="*", help="ticker symbols (add/remove)")
    watch.add_argument("--warehouse")


def run(args: argparse.Namespace, warehouse: Warehouse) -> int:
    """``quant-pipeline watch ...``: prints what changed, or the status table for ``list``."""
    if args.action in ("add", "remove") and not args.symbols:
        raise ValueError(f"watch {args.action} needs at least one symbol")
    if args.action == "add":
        new = add_symbols(warehouse, args.symbols)
        print(f"watching {len(read_symbols(warehouse))} symbol(s); added: {', '.join(new) or '-'}")
        return 0
    if args.action == "remove":
        gone = remove_symbols(warehouse, args.symbols)
        print(f"removed: {', '.join(gone) or '- (none of them was watched)'}")
        return 0
    table = status(warehouse)
    if table.is_empty():
        print("the watchlist is empty; add symbols with: quant-pipeline watch add AAPL MSFT")
        return 0
    with pl.Config(tbl_rows=200, tbl_cols=len(STATUS_SCHEMA), tbl_width_chars=200):
        print(table.drop("added_at"))
    return 0

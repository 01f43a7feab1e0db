"""Facts about a frame's shape: which columns it has, and cheap checks of row order (used to
skip sorts, hashes and duplicate checks on big frames). The one home of both checks."""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl


def is_sorted_by(frame: pl.DataFrame, key: list[str] | tuple[str, ...]) -> bool:
    """True when the rows are in strictly increasing lexicographic ``key`` order, so each key
    occurs once. O(n) with no sort and no hashing: the first key column must be non-decreasing
    (a native check), and rows that repeat it must increase in the remaining columns. A null
    that decides a comparison gives False."""
    key = list(key)
    if frame.height <= 1:
        return True
    first = frame.get_column(key[0])
    if first.null_count() or not first.is_sorted():
        return False
    increasing: pl.Expr = pl.lit(False)  # rows equal on every key column are not increasing
    for c in reversed(key[1:]):
        col, prev = pl.col(c), pl.col(c).shift()
        increasing = (col > prev) | ((col == prev) & increasing)
    # rle_id compares neighbours in place; shifting a 15M-row string column would copy it
    run = pl.col(key[0]).rle_id()
    new_first = run != run.shift()
    check = (new_first | increasing).slice(1).fill_null(False).all()
    # lazy: the engine computes rle_id once and works chunk by chunk (14M (ticker, date) rows
    # in DuckDB's 114 Arrow chunks: 1.24 s eager, 0.20 s lazy)
    return bool(frame.lazy().select(check).collect().item())


def missing_columns(frame: pl.DataFrame | pl.LazyFrame, columns: Iterable[str]) -> list[str]:
    """The names in ``columns`` that ``frame`` lacks, in the order given (a lazy frame's schema
    is resolved, its rows are not computed)."""
    names = set(frame.collect_schema().names())
    return [c for c in columns if c not in names]


def require_columns(
    frame: pl.DataFrame | pl.LazyFrame,
    columns: Iterable[str],
    what: str,
    error: type[Exception] = ValueError,
) -> None:
    """Raise ``error`` unless ``frame`` has every one of ``columns``.

    The one required-columns check of the package: the message names the frame (``what``, e.g.
    ``"curated.prices"`` or ``"daily"``), the missing columns and the columns it has, e.g.
    ``daily: missing column(s) ['benchmark_return']; it has ['date', 'portfolio_return']``.
    Each module passes its own exception class so callers keep catching what they caught."""
    if not isinstance(frame, pl.DataFrame | pl.LazyFrame):
        raise error(f"{what} must be a polars DataFrame, got {type(frame).__name__}")
    missing = missing_columns(frame, columns)
    if missing:
        names = frame.collect_schema().names()
        raise error(f"{what}: missing column(s) {missing}; it has {names}")

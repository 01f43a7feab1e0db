"""Cheap facts about row order, used to skip sorts, hashes and duplicate checks on big frames."""

from __future__ import annotations

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
    return bool(frame.select((new_first | increasing).slice(1).fill_null(False).all()).item())

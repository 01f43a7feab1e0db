"""What changed since the previous packet of the same portfolio: the ``changes`` section.

Pure. Both books are frames (ticker, sector, weight, score, rank) of the names the packet trades
to (weight > 0): the target book of the new packet and the one recorded in the previous packet
(its ``target`` section). A name is *added* when only the new book holds it (with its new score
and rank: why it came in), *removed* when only the previous one did (with the score and rank it
had then), and a name in both is listed under *weight_changes* when
``|weight - previous_weight| > threshold`` (fractions of the book: 0.01 = one percentage point).
Scores and ranks are the strategy's (``factors.scores``; signal strength and a null rank for
signal strategies); a previous packet written before the ``target`` section existed gives its
order table's target weights, with null scores and ranks.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from quant_pipeline.core.data.frames import require_columns

BOOK_COLUMNS: tuple[str, ...] = ("ticker", "sector", "weight", "score", "rank")
BOOK_SCHEMA: dict[str, pl.DataType] = {
    "ticker": pl.String(),
    "sector": pl.String(),
    "weight": pl.Float64(),
    "score": pl.Float64(),
    "rank": pl.Int64(),
}


def book_frame(rows: list[dict[str, Any]] | pl.DataFrame) -> pl.DataFrame:
    """A book in :data:`BOOK_SCHEMA` (missing score / rank / sector columns become null)."""
    frame = rows if isinstance(rows, pl.DataFrame) else pl.DataFrame(rows, infer_schema_length=None)
    if frame.is_empty() and not frame.columns:
        return pl.DataFrame(schema=BOOK_SCHEMA)
    require_columns(frame, ("ticker", "weight"), "book")
    return frame.select(
        [
            (pl.col(c) if c in frame.columns else pl.lit(None)).cast(t).alias(c)
            for c, t in BOOK_SCHEMA.items()
        ]
    ).sort("ticker")


def packet_changes(
    current: pl.DataFrame,
    previous: pl.DataFrame | None,
    previous_packet_id: str | None,
    threshold: float,
) -> dict[str, Any]:
    """The ``changes`` section: previous packet id, names added / removed, weight changes.

    ``current`` / ``previous``: books (see :func:`book_frame`); ``previous`` None = no earlier
    packet of this portfolio (every name is then *added*). Lists are sorted: added by rank then
    ticker, removed by previous rank then ticker, weight changes by the size of the change
    (largest first) then ticker.
    """
    if threshold < 0:
        raise ValueError(f"weight change threshold must be >= 0, got {threshold!r}")
    now = book_frame(current).filter(pl.col("weight") > 0)
    before = book_frame(previous if previous is not None else []).filter(pl.col("weight") > 0)
    added = now.join(before, on="ticker", how="anti").sort("rank", "ticker", nulls_last=True)
    removed = before.join(now, on="ticker", how="anti").sort("rank", "ticker", nulls_last=True)
    both = now.join(before, on="ticker", how="inner", suffix="_previous").with_columns(
        change=pl.col("weight") - pl.col("weight_previous")
    )
    moved = (
        both.filter(pl.col("change").abs() > threshold)
        .with_columns(_size=pl.col("change").abs())
        .sort(["_size", "ticker"], descending=[True, False])
        .select(
            "ticker",
            "sector",
            pl.col("weight_previous").alias("previous_weight"),
            "weight",
            "change",
            "score",
            "rank",
            pl.col("rank_previous").alias("previous_rank"),
        )
    )
    return {
        "previous_packet_id": previous_packet_id,
        "weight_threshold": threshold,
        "n_added": added.height,
        "n_removed": removed.height,
        "n_kept": both.height,
        "added": added.to_dicts(),
        "removed": removed.to_dicts(),
        "weight_changes": moved.to_dicts(),
    }


def format_changes(changes: dict[str, Any]) -> list[str]:
    """The ``changes`` section as terminal lines."""
    previous = changes["previous_packet_id"]
    if previous is None:
        return [f"changes: first packet of this portfolio ({changes['n_added']} names)"]
    lines = [
        f"changes since {previous}: {changes['n_added']} added, {changes['n_removed']} removed, "
        f"{changes['n_kept']} kept ({len(changes['weight_changes'])} weights moved more than "
        f"{changes['weight_threshold']:.2%})"
    ]
    for label, rows in (("added", changes["added"]), ("removed", changes["removed"])):
        for r in rows:
            lines.append(
                f"  {label} {r['ticker']} ({r['sector'] or 'unknown sector'}): weight "
                f"{r['weight']:.2%}, score {_num(r['score'])}, rank {_num(r['rank'])}"
            )
    for r in changes["weight_changes"]:
        lines.append(
            f"  weight {r['ticker']}: {r['previous_weight']:.2%} -> {r['weight']:.2%} "
            f"({r['change']:+.2%})"
        )
    return lines


def _num(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}" if isinstance(value, float) else str(value)

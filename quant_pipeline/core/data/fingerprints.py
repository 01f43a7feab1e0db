"""Input fingerprints: what an incremental step compares to decide which of its rows to keep.

Pure. A step that computes rows per key (a rebalance date, a strategy, a strategy and date)
gives each key a *digest*: a hash of everything the key's rows are computed from (the inputs'
content up to the dates the key may look at, the strategy's spec, the code's version). The
digests are stored beside the rows; on the next run :func:`plan_reuse` compares the new digests
with the stored ones and splits the keys into

* ``kept`` — same digest, rows already stored: the step does not recompute them;
* ``computed`` — new key, or a digest that changed (or reuse is off): recomputed and written;
* ``dropped`` — stored but no longer produced (a rebalance date or strategy that went): deleted.

Since a key's rows are a deterministic function of what its digest covers, keeping them gives
exactly the rows a full recompute would (``quant_pipeline_tests`` compares both table by table).
Content hashes come from ``storage.warehouse.Warehouse.cumulative_hashes`` (running, per date),
so "the prices before D" is one lookup per rebalance date.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import polars as pl

DIGEST_LENGTH = 32
KEPT = "kept: inputs unchanged"
NEW = "computed: new"
CHANGED = "computed: inputs changed"
FORCED = "computed: reuse off (full recompute)"
DROPPED = "dropped: no longer produced"


def digest(*parts: object) -> str:
    """A short stable hash of ``parts`` (JSON; dates and other objects by their ``str``)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_LENGTH]


def hashes_before(cumulative: pl.DataFrame, dates: Sequence[date]) -> dict[date, str]:
    """For each of ``dates``: the running hash (``Warehouse.cumulative_hashes``) of the rows
    dated strictly before it, with their count (``"0:"`` when there are none)."""
    return _lookup(cumulative, dates, strict=True)


def _lookup(cumulative: pl.DataFrame, dates: Sequence[date], strict: bool) -> dict[date, str]:
    wanted = pl.DataFrame({"key": sorted(set(dates))}, schema={"key": pl.Date})
    if wanted.is_empty():
        return {}
    found = wanted.join_asof(
        cumulative.sort("date"),
        left_on="key",
        right_on="date",
        allow_exact_matches=not strict,
    )
    return {
        row["key"]: f"{row['rows'] or 0}:{row['hash'] or ''}" for row in found.iter_rows(named=True)
    }


@dataclass(frozen=True)
class Reuse:
    """Which keys of a step are kept, computed or dropped, and why (see the module docstring).

    ``current``: every key the step produces now, with its ``digest`` (what is stored after the
    write). ``reasons``: key count per reason, for the asset's metadata."""

    key_columns: tuple[str, ...]
    current: pl.DataFrame
    kept: pl.DataFrame
    computed: pl.DataFrame
    dropped: pl.DataFrame
    reasons: dict[str, int]

    @property
    def replaced(self) -> pl.DataFrame:
        """The keys whose stored rows the write deletes: computed and dropped ones."""
        return pl.concat([self.computed, self.dropped]).unique()

    def computed_values(self, column: str) -> list:
        """The distinct values of ``column`` among the computed keys (sorted)."""
        return sorted(self.computed[column].unique().to_list())


def plan_reuse(
    current: pl.DataFrame,
    stored: pl.DataFrame | None,
    key_columns: Sequence[str],
    *,
    enabled: bool = True,
    owned: pl.Expr | None = None,
) -> Reuse:
    """Split ``current`` (keys + ``digest``) against ``stored`` (the digests written last time,
    same columns; None = none stored) into kept, computed and dropped keys.

    ``enabled=False`` computes every key (a full recompute). ``owned``
    limits the dropped keys to the ones this run owns (a run restricted to some strategies must
    not drop the others' rows)."""
    keys = list(key_columns)
    current = current.select(*keys, "digest").unique(subset=keys, keep="last")
    empty = current.select(keys).clear()
    if stored is None or not enabled:
        reason = FORCED if not enabled else NEW
        computed = current.select(keys)
        dropped = empty
        if stored is not None:
            dropped = stored.select(keys).join(current, on=keys, how="anti")
            if owned is not None:
                dropped = dropped.filter(owned)
        reasons = {reason: computed.height} if computed.height else {}
        if dropped.height:
            reasons[DROPPED] = dropped.height
        return Reuse(tuple(keys), current, empty, computed, dropped, reasons)
    stored = stored.select(*keys, pl.col("digest").alias("_stored"))
    joined = current.join(stored, on=keys, how="left", nulls_equal=True)
    labelled = joined.with_columns(
        reason=pl.when(pl.col("_stored").is_null())
        .then(pl.lit(NEW))
        .when(pl.col("_stored") != pl.col("digest"))
        .then(pl.lit(CHANGED))
        .otherwise(pl.lit(KEPT))
    )
    dropped = stored.select(keys).join(current, on=keys, how="anti", nulls_equal=True)
    if owned is not None:
        dropped = dropped.filter(owned)
    counts = labelled.group_by("reason").len().sort("reason")
    reasons = dict(counts.iter_rows())
    if dropped.height:
        reasons[DROPPED] = dropped.height
    return Reuse(
        tuple(keys),
        current,
        labelled.filter(pl.col("reason") == KEPT).select(keys),
        labelled.filter(pl.col("reason") != KEPT).select(keys),
        dropped,
        reasons,
    )

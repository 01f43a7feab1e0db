"""The dataset version: one content hash of the curated inputs a packet or a backtest used.

Pure. ``storage.warehouse.Warehouse.content_fingerprints`` gives each curated table's row count
and an order-independent hash of its rows; :func:`dataset_version` folds them into one short id.
Two packets or backtests with the same dataset version were computed from the same curated
rows. ``ingested_at`` columns are left out (when a row was loaded is not its content), and so is
``curated.fundamentals_vintages``, whose ``vintage_at`` is an ingestion time; the fundamentals
themselves are in ``curated.fundamentals``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

import polars as pl

# The curated tables every result is computed from (factors, weights, backtest, orders).
DATASET_TABLES: tuple[str, ...] = (
    "curated.prices",
    "curated.fundamentals",
    "curated.securities",
    "curated.membership",
    "curated.corporate_actions",
)
EXCLUDED_COLUMNS: tuple[str, ...] = ("ingested_at",)
VERSION_LENGTH = 16


def dataset_version(fingerprints: Mapping[str, Mapping[str, object]]) -> str | None:
    """The first 16 hex digits of sha256 over the sorted ``{table: {rows, hash}}`` JSON (None
    when there is no table: nothing to version)."""
    if not fingerprints:
        return None
    text = json.dumps(
        {t: dict(sorted(f.items())) for t, f in sorted(fingerprints.items())},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode()).hexdigest()[:VERSION_LENGTH]


def fingerprints(frame: pl.DataFrame, key: str, columns: Sequence[str]) -> pl.DataFrame:
    """One content hash per value of ``key``: the first 16 hex digits of sha256 over the CSV of
    that group's ``columns``, rows sorted by them (so row order does not matter). A research
    table stamps the fingerprint of the rows it was computed from; a reader recomputes it on
    the rows it holds now and knows whether the research result is still about them.
    Returns ``key, fingerprint`` sorted by ``key``."""
    rows = []
    for (value,), group in frame.select(key, *columns).group_by(key):
        text = group.select(columns).sort(columns).write_csv()
        rows.append((value, hashlib.sha256(text.encode()).hexdigest()[:VERSION_LENGTH]))
    schema = {key: frame.schema[key], "fingerprint": pl.String()}
    return pl.DataFrame(rows, schema=schema, orient="row").sort(key)

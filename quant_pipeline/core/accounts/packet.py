"""The content of a recommendation packet: its identity, the orders CSV and the JSON document.

Pure: :mod:`quant_pipeline.app.packets` names the files, writes them atomically into the outbox
and fills in the code version (git); this module only turns frames and dicts into text.
The JSON document is ``{"manifest": ..., "summary": ..., "orders": [one object per order],
"target": [the book traded to], "changes": {the diff against the previous packet}}``.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import PurePath
from typing import Any

import polars as pl


def packet_id(portfolio: str, as_of: date) -> str:
    """The identity of a packet: one per portfolio and as-of date (``name@YYYY-MM-DD``)."""
    return f"{portfolio}@{as_of.isoformat()}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def packet_csv(orders: pl.DataFrame) -> str:
    """The orders CSV of a packet: a header row, then one row per order (dates ISO)."""
    return orders.write_csv()


def packet_json(
    orders: pl.DataFrame,
    manifest: dict[str, Any],
    summary: dict[str, Any],
    sections: dict[str, Any] | None = None,
) -> str:
    """The JSON document of a packet (dates as ISO strings, keys in a stable order):
    manifest, summary, orders, then ``sections`` (``target``: the book traded to, ``changes``:
    the diff against the previous packet, see core.accounts.changes).

    Raises ``ValueError`` for a NaN or infinite number, which JSON cannot hold.
    """
    doc = {
        "manifest": _jsonable(manifest),
        "summary": _jsonable(summary),
        "orders": _jsonable(orders.to_dicts()),
        **{k: _jsonable(v) for k, v in (sections or {}).items()},
    }
    return json.dumps(doc, indent=2, allow_nan=False) + "\n"

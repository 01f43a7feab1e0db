"""How a step keeps the rows whose inputs did not change (``core.data.fingerprints``).

An incremental table ``schema.name`` has a digest table ``schema.name_inputs`` (an asset of the
same step): one row per key (a rebalance date, a strategy, ...) with the digest of everything
that key's rows were computed from. The step computes the digests of its current keys (cheap:
content hashes in DuckDB, spec and code hashes), reads the stored ones with
:meth:`Incremental.plan`, computes only the ``computed`` keys and writes with
:meth:`Incremental.write`: the computed keys' rows replace theirs, dropped keys go, kept keys
stay as stored. With no digests stored yet (the first run) or ``QUANT_PIPELINE_INCREMENTAL=false``
it computes everything and writes as before (:func:`defs.strategies.write_owned`).

The reason for every key is in the asset's metadata (``incremental``: key counts per reason,
``recomputed``: the first keys recomputed), so the UI shows what was kept and why.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

import dagster as dg
import duckdb
import polars as pl

from quant_pipeline.core.data.fingerprints import Reuse, digest, plan_reuse
from quant_pipeline.core.strategies.spec import StrategySpec
from quant_pipeline.defs.metadata import markdown_table, table_metadata
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.defs.strategies import is_restricted, owned_strategies, write_owned
from quant_pipeline.storage.warehouse import Warehouse

_VERSIONS: dict[tuple[str, ...], str] = {}


def code_version(*modules: ModuleType) -> str:
    """A digest of the source of ``modules`` and the polars and DuckDB versions: results kept
    by an incremental step are recomputed when the code that made them changes."""
    key = tuple(m.__name__ for m in modules)
    if key not in _VERSIONS:
        _VERSIONS[key] = digest(
            pl.__version__, duckdb.__version__, *(inspect.getsource(m) for m in modules)
        )
    return _VERSIONS[key]


def spec_digest(spec: StrategySpec) -> str:
    """A digest of a strategy spec (a frozen dataclass of plain values): every field as the
    run uses it (after a plan dropped what the data cannot serve, e.g. sector caps), but not
    the file it was read from (moving the strategies folder changes no result)."""
    return digest(repr(dataclasses.replace(spec, source=None)))


def incremental_enabled(market: MarketDataResource) -> bool:
    """False when the run asks for a full recompute (``QUANT_PIPELINE_INCREMENTAL=false``)."""
    return market.settings().incremental


@dataclass(frozen=True)
class Incremental:
    """An incremental table, its digest table and their key columns."""

    table: str
    key_columns: tuple[str, ...]
    description: str

    @property
    def digests(self) -> str:
        return f"{self.table}_inputs"

    def spec(self, group: str, deps: Sequence[dg.AssetKey]) -> dg.AssetSpec:
        """The digest table's AssetSpec (an output of the step that writes ``table``)."""
        from quant_pipeline.defs.tables import table_spec

        return table_spec(self.digests, self.description, group, deps)

    def plan(
        self,
        warehouse: WarehouseResource,
        market: MarketDataResource,
        current: pl.DataFrame,
    ) -> Reuse:
        """Kept / computed / dropped keys of ``current`` (keys + ``digest``)."""
        wh = warehouse.read_only()
        stored = None
        # a key may legitimately have no rows (no eligible names on a date), so the digests,
        # written in the same step after the rows, are the record of what is stored
        if wh.has_table(self.digests) and wh.has_table(self.table):
            stored = wh.read_table(self.digests)
            if not set(self.key_columns) | {"digest"} <= set(stored.columns):
                stored = None
        owned = None
        if is_restricted(market):  # a restricted run drops none of the other runs' keys
            owned = (
                pl.col("strategy").is_in(owned_strategies(market))
                if "strategy" in self.key_columns
                else pl.lit(False)
            )
        return plan_reuse(
            current,
            stored,
            self.key_columns,
            enabled=incremental_enabled(market),
            owned=owned,
        )

    def write(
        self,
        wh: Warehouse,
        market: MarketDataResource,
        reuse: Reuse,
        frame: pl.DataFrame,
        column: str = "strategy",
        keys: Sequence[object] | None = None,
    ) -> None:
        """Write the computed keys' rows and their digests (:meth:`write_tables` of one)."""
        self.write_tables(wh, market, reuse, {self.table: frame}, column, keys)

    def write_tables(
        self,
        wh: Warehouse,
        market: MarketDataResource,
        reuse: Reuse,
        frames: dict,
        column: str = "strategy",
        keys: Sequence[object] | None = None,
    ) -> None:
        """Write each table's computed rows (``frames``: table -> rows keyed like ``table``),
        then the digests. The first run (nothing kept, nothing stored) and a full recompute
        write as :func:`write_owned` does (``column``, ``keys``: its partition); otherwise the
        computed and dropped keys' rows are replaced (:meth:`Warehouse.replace_keys`)."""
        full = reuse.kept.is_empty() and reuse.computed.height == reuse.current.height
        digests = reuse.current.join(reuse.computed, on=list(self.key_columns), how="semi")
        # forget the replaced keys' digests first: a write that stops half-way leaves those
        # keys with no digest (recomputed next time), never an old digest over new rows
        if wh.has_table(self.digests) and reuse.replaced.height:
            wh.replace_keys(self.digests, pl.DataFrame(), reuse.replaced)
        for table, frame in {**frames, self.digests: digests}.items():
            if full:
                write_owned(wh, market, table, frame, column, keys)
            else:
                wh.replace_keys(table, frame, reuse.replaced)


@dataclass(frozen=True)
class WholeStep:
    """A step whose tables are kept whole while one digest of all its inputs is unchanged
    (e.g. the universe screen: one screen of the latest data). Its digest table holds one row
    (``step`` = ``table``, ``digest``)."""

    table: str
    description: str

    @property
    def keys(self) -> Incremental:
        return Incremental(self.table, ("step",), self.description)

    @property
    def digests(self) -> str:
        return self.keys.digests

    def spec(self, group: str, deps: Sequence[dg.AssetKey]) -> dg.AssetSpec:
        return self.keys.spec(group, deps)

    def plan(self, warehouse: WarehouseResource, market: MarketDataResource, value: str) -> Reuse:
        """Kept (one KEPT key) when ``value`` equals the stored digest, else computed."""
        current = pl.DataFrame({"step": [self.table], "digest": [value]})
        return self.keys.plan(warehouse, market, current)

    def write(self, wh: Warehouse, reuse: Reuse, frames: dict) -> None:
        """Replace every table of ``frames`` whole, the digest last (forgotten first, so a
        write that stops half-way is recomputed next time)."""
        empty = reuse.current.clear()
        if wh.has_table(self.digests):
            wh.replace_table(self.digests, empty)
        for table, frame in frames.items():
            wh.replace_table(table, frame)
        wh.replace_table(self.digests, reuse.current)


def strategy_digests(parts: dict[str, tuple]) -> pl.DataFrame:
    """The ``(strategy, digest)`` frame of per-strategy digest parts."""
    return pl.DataFrame(
        {"strategy": list(parts), "digest": [digest(*p) for p in parts.values()]},
        schema={"strategy": pl.String, "digest": pl.String},
    )


def frame_digest(frame: pl.DataFrame) -> str:
    """An order-independent content hash of a (small) frame: its columns, rows and row hashes."""
    if frame.is_empty():
        return f"0:{frame.columns}"
    return f"{frame.height}:{frame.columns}:{frame.hash_rows().sum()}"


def digest_map(frame: pl.DataFrame, by: str = "strategy") -> dict[str, str]:
    """Per value of ``by``: one digest of the digests a step stored (``<table>_inputs``)."""
    if frame.is_empty():
        return {}
    rows = frame.sort(frame.columns).group_by(by, maintain_order=True).agg(pl.col("digest"))
    return {k: digest(list(v)) for k, v in rows.iter_rows()}


def stored_metadata(
    wh: Warehouse, table: str, computed: pl.DataFrame, reuse: Reuse, **extra: object
) -> dict[str, object]:
    """:func:`table_metadata` of an incremental table after its write: the row count is the
    stored table's (kept and recomputed rows), ``rows_recomputed`` the rows this run wrote,
    the preview theirs; plus :func:`reuse_metadata`."""
    return {
        **table_metadata(table, computed, rows_recomputed=computed.height, **extra),
        "dagster/row_count": wh.row_count(table),
        **reuse_metadata(reuse),
    }


def reuse_metadata(reuse: Reuse, shown: int = 12) -> dict[str, object]:
    """What an incremental step shows: key counts per reason and the first recomputed keys."""
    return {
        "incremental": dg.MetadataValue.json(reuse.reasons),
        "recomputed": dg.MetadataValue.md(
            markdown_table(reuse.computed.sort(list(reuse.key_columns)), max_rows=shown)
            if reuse.computed.height
            else "_(nothing: every key's inputs were unchanged)_"
        ),
    }

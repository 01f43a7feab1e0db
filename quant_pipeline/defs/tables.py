"""One declaration of the warehouse tables a step reads: its Dagster deps and its read calls.

A step declares the tables it reads once, at module level::

    READS = reads("curated.prices", "curated.membership")

``READS.deps`` goes into the asset decorator (lineage and staleness in the UI) and
``READS.reader(warehouse.read_only())`` is the only way the body reads: reading a table that is
not declared raises :class:`UndeclaredReadError`, so the deps and the reads cannot drift apart.
Every declaration is kept in :data:`DECLARED`, so a test can prove that each table some step reads
is an asset of the Definitions. (An IO manager would do the same, but dagster-duckdb-polars cannot
load tables under duckdb 2.0, and our steps read column subsets and filtered rows.)

``table_spec`` is the matching declaration of a table a step writes: the ``AssetSpec`` of one
output of a multi-asset.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import dagster as dg
import polars as pl

from quant_pipeline.storage.warehouse import Warehouse

KINDS = {"duckdb", "polars"}


class UndeclaredReadError(RuntimeError):
    """A step read a warehouse table it did not declare in its ``reads(...)``."""


def asset_key(table: str) -> dg.AssetKey:
    """``"schema.table"`` → the asset key ``schema/table`` of the asset that writes it."""
    parts = table.split(".")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"table {table!r} is not 'schema.table'")
    return dg.AssetKey(parts)


@dataclass(frozen=True)
class Reads:
    """The warehouse tables one step (asset, multi-asset or check) reads."""

    tables: tuple[str, ...]

    @property
    def deps(self) -> list[dg.AssetKey]:
        """The asset keys of the tables: the step's ``deps`` / ``additional_deps``."""
        return [asset_key(t) for t in self.tables]

    def reader(self, warehouse: Warehouse) -> TableReader:
        """Read calls limited to these tables (pass ``WarehouseResource.read_only()``)."""
        return TableReader(warehouse, self)


DECLARED: list[Reads] = []


def reads(*tables: str) -> Reads:
    """Declare the tables a step reads (and register the declaration in :data:`DECLARED`)."""
    for table in tables:
        asset_key(table)
    if len(set(tables)) != len(tables):
        raise ValueError(f"reads{tables}: a table is declared twice")
    declared = Reads(tuple(tables))
    DECLARED.append(declared)
    return declared


class TableReader:
    """Reads of one step through a warehouse, refused for tables the step did not declare."""

    def __init__(self, warehouse: Warehouse, declared: Reads) -> None:
        self.warehouse = warehouse
        self.declared = declared

    def _check(self, table: str) -> None:
        if table not in self.declared.tables:
            raise UndeclaredReadError(
                f"read of {table} is not declared: add it to this step's "
                f"reads{self.declared.tables} so its asset is a dependency"
            )

    def __call__(
        self,
        table: str,
        columns: Sequence[str] | None = None,
        filters: dict[str, object] | None = None,
    ) -> pl.DataFrame:
        """``Warehouse.read_table`` of a declared table."""
        self._check(table)
        return self.warehouse.read_table(table, columns=columns, filters=filters)

    def batches(
        self, table: str, columns: Sequence[str] | None = None, max_rows: int | None = None
    ) -> AbstractContextManager[Iterator[pl.DataFrame]]:
        """``Warehouse.read_batches`` of a declared table: its rows in batches of whole
        tickers, one snapshot (``max_rows``: the warehouse's default when None)."""
        self._check(table)
        if max_rows is None:
            return self.warehouse.read_batches(table, columns)
        return self.warehouse.read_batches(table, columns, max_rows=max_rows)

    def raw(
        self, dataset: str, source: str | None = None, tickers: Sequence[str] | None = None
    ) -> pl.DataFrame:
        """``Warehouse.read_raw`` of a declared ``raw.<dataset>`` (empty when not written yet),
        of ``tickers`` only when given."""
        self._check(f"raw.{dataset}")
        return self.warehouse.read_raw(dataset, source, tickers)

    def ticker_rows(self, dataset: str, source: str) -> pl.DataFrame:
        """``Warehouse.ticker_rows`` of a declared ``raw.<dataset>``: rows per ticker."""
        self._check(f"raw.{dataset}")
        return self.warehouse.ticker_rows(dataset, source)

    def cumulative_hashes(
        self, table: str, date_column: str, columns: Sequence[str] | None = None
    ) -> pl.DataFrame:
        """``Warehouse.cumulative_hashes`` of a declared table (every column when None)."""
        self._check(table)
        return self.warehouse.cumulative_hashes(table, date_column, columns)

    def distinct_dates(self, table: str, date_column: str = "date") -> pl.DataFrame:
        """``Warehouse.distinct_dates`` of a declared table: its dates, in order."""
        self._check(table)
        return self.warehouse.distinct_dates(table, date_column)

    def date_ranges(self, table: str, key_column: str, date_column: str) -> pl.DataFrame:
        """``Warehouse.date_ranges`` of a declared table: first and last date per key."""
        self._check(table)
        return self.warehouse.date_ranges(table, key_column, date_column)

    def content_hash(self, table: str) -> str:
        """One order-independent hash of a declared table's rows, ``ingested_at`` left out
        (when a row was loaded is not its content); ``"absent"`` if the table is missing."""
        self._check(table)
        found = self.warehouse.content_fingerprints([table], ("ingested_at",)).get(table)
        return "absent" if found is None else f"{found['rows']}:{found['hash']}"

    def has_table(self, table: str) -> bool:
        """Whether a declared table exists yet (optional inputs such as orders.live_holdings)."""
        self._check(table)
        return self.warehouse.has_table(table)


def table_spec(
    table: str,
    description: str,
    group: str,
    deps: Sequence[dg.AssetKey] = (),
    kinds: set[str] | None = None,
) -> dg.AssetSpec:
    """The ``AssetSpec`` of a warehouse table one multi-asset writes (key = table name)."""
    return dg.AssetSpec(
        asset_key(table),
        deps=list(deps),
        description=description,
        group_name=group,
        kinds=kinds or KINDS,
    )

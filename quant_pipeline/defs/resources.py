"""Dagster resources: the warehouse and the market data source.

Every field is optional: an unset field falls back to the matching ``QUANT_PIPELINE_*``
environment variable, read when the resource is used (never at import time), so the same code
location serves env-driven runs (``make demo``) and UI launches with explicit resource config.
Neither resource connects to anything in its constructor: DuckDB allows one writing process per
file, and a code server holding a connection would lock the warehouse for everyone.
"""

from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl
from pydantic import PrivateAttr

from quant_pipeline.settings import Settings, from_env
from quant_pipeline.sources import make_source
from quant_pipeline.sources.base import Source
from quant_pipeline.storage.warehouse import Warehouse


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file (default: QUANT_PIPELINE_WAREHOUSE, warehouse/quant.duckdb)."""

    path: str | None = None

    def get(self) -> Warehouse:
        path = Path(self.path) if self.path else from_env().warehouse
        warehouse = Warehouse(path)
        warehouse.ensure_schemas()
        return warehouse


class MarketDataResource(dg.ConfigurableResource):
    """Where market data comes from: the demo market, Yahoo Finance or a directory of files.

    One source object serves every asset of a run (Dagster gives each run its own copy of the
    resource): Yahoo price histories fetched for ``raw.prices`` are reused for
    ``raw.corporate_actions``, and once Yahoo proved unreachable the later datasets fail at once.
    Subclasses (tests, embedders) override :meth:`build_source` to supply another source.
    """

    source: str | None = None
    data_dir: str | None = None
    universe: str | None = None
    demo_tickers: int | None = None
    demo_start: str | None = None
    demo_seed: int | None = None
    demo_end: str | None = None
    strategies: list[str] | None = None
    yahoo_max_failed_share: float = 0.5
    price_overlap_days: int = 7
    # fetched by yahoo beside the universe, compared with in backtest.benchmarks when present
    benchmark_tickers: list[str] = ["SPY", "IWM"]

    def settings(self) -> Settings:
        changes: dict[str, object] = {}
        if self.source:
            changes["source"] = self.source.lower()
        if self.data_dir:
            changes["data_dir"] = Path(self.data_dir)
        if self.universe:
            changes["universe"] = Path(self.universe)
        if self.demo_tickers is not None:
            changes["demo_tickers"] = self.demo_tickers
        if self.demo_start:
            changes["demo_start"] = date.fromisoformat(self.demo_start)
        if self.demo_end:
            changes["demo_end"] = date.fromisoformat(self.demo_end)
        if self.demo_seed is not None:
            changes["demo_seed"] = self.demo_seed
        if self.strategies:
            changes["strategies"] = tuple(self.strategies)
        base = from_env()
        return base.with_(**changes) if changes else base

    _source: Source | None = PrivateAttr(default=None)
    _run_id: str | None = PrivateAttr(default=None)
    _logged_rows: int = PrivateAttr(default=0)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # The Dagster run id becomes the run_id of raw.ingest_log rows.
        self._run_id = context.run.run_id if context.run is not None else None

    def build_source(self) -> Source:
        """A new source for the configured settings (no network or file access yet)."""
        return make_source(
            self.settings(),
            max_failed_share=self.yahoo_max_failed_share,
            run_id=self._run_id,
            benchmark_tickers=tuple(self.benchmark_tickers),
        )

    def get_source(self) -> Source:
        """The source of this run, built on first use."""
        if self._source is None:
            self._source = self.build_source()
        return self._source

    @property
    def run_id(self) -> str | None:
        """The Dagster run this resource serves (None outside a run)."""
        return self._run_id

    def unlogged_ingest_rows(self) -> pl.DataFrame | None:
        """Rows of the source's ``ingest_log`` not handed out before (None: the source keeps
        no per-ticker log). Each asset of a run writes only the attempts it caused."""
        log = getattr(self._source, "ingest_log", None)
        if not isinstance(log, pl.DataFrame):
            return None
        new = log.slice(self._logged_rows)
        self._logged_rows = log.height
        return new

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
    """Where market data comes from: the demo market, Yahoo Finance or a directory of files."""

    source: str | None = None
    data_dir: str | None = None
    universe: str | None = None
    demo_tickers: int | None = None
    demo_start: str | None = None
    demo_seed: int | None = None
    strategies: list[str] | None = None
    yahoo_max_failed_share: float = 0.5
    price_overlap_days: int = 7

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
        if self.demo_seed is not None:
            changes["demo_seed"] = self.demo_seed
        if self.strategies:
            changes["strategies"] = tuple(self.strategies)
        base = from_env()
        return base.with_(**changes) if changes else base

    def get_source(self) -> Source:
        return make_source(self.settings(), max_failed_share=self.yahoo_max_failed_share)

"""Dagster resources: the warehouse and the market data source.

Every field is optional: an unset field falls back to the matching ``QUANT_PIPELINE_*``
environment variable, read when the resource is used (never at import time), so the same code
location serves env-driven runs (``make demo``) and UI launches with explicit resource config.
Neither resource connects to anything in its constructor: DuckDB allows one writing process per
file, and a code server holding a connection would lock the warehouse for everyone.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, get_args, get_origin

import dagster as dg
import polars as pl
from pydantic import Field, PrivateAttr, create_model

from quant_pipeline.settings import Settings, env_var, from_env, resource_fields
from quant_pipeline.sources import make_source
from quant_pipeline.sources.base import Source
from quant_pipeline.storage.run_lock import hold_run_lock
from quant_pipeline.storage.warehouse import Warehouse, reusing_reads

# The Settings fields the market resource can override for one run (declared in the model).
SETTINGS_FIELDS = resource_fields("market")


def _describe(name: str) -> str:
    info = Settings.model_fields[name]
    return f"{info.description} (unset: {env_var(name)})"


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file (default: QUANT_PIPELINE_WAREHOUSE, warehouse/quant.duckdb).

    In a run, the resource holds the warehouse's run lock (``storage/run_lock.py``) from its
    initialisation, before the first step, to its teardown after the last: under the in-process
    executor of the project's ``Definitions`` that is the whole run, so two runs (UI, schedule,
    sensor or ``quant-pipeline run``) never interleave their tables; a run finding the lock held
    waits (bounded by QUANT_PIPELINE_RUN_LOCK_TIMEOUT) and logs which run it waits for. While it
    holds the lock, the run's reads share one held read-only connection between its writes
    (``storage.warehouse.reusing_reads``) instead of opening one per read. Outside a run
    (sensors, tests calling :meth:`get`) nothing is locked or held."""

    path: str | None = Field(default=None, description=_describe("warehouse"))

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator["WarehouseResource"]:
        run = context.run
        if run is None:
            yield self
            return
        log = context.log

        def waiting(message: str) -> None:
            if log is not None:
                log.warning(f"run {run.run_id} is {message}")

        with hold_run_lock(
            self._path(), f"dagster run of {run.job_name}", run.run_id, on_wait=waiting
        ) as acquired:
            if log is not None:
                log.info(f"took the warehouse run lock after {acquired.waited:.1f} s")
            with reusing_reads(self._path()):  # no other process writes while the run holds it
                yield self

    def get(self) -> Warehouse:
        """The warehouse for a step that writes (creates the schemas on first use)."""
        warehouse = Warehouse(self._path())
        warehouse.ensure_schemas()
        return warehouse

    def read_only(self) -> Warehouse:
        """The warehouse for a check or a step that only reads: DuckDB ``read_only=True``
        connections, no write lock, and every write raises ``WarehouseReadOnlyError``."""
        return Warehouse(self._path(), read_only=True)

    def _path(self) -> Path:
        return from_env(overrides={"warehouse": self.path}, origin="resource config").warehouse


def _override_field(name: str) -> tuple[Any, Any]:
    """The resource field of a Settings field: optional, in a type Dagster config can hold
    (flags stay flags, whole numbers stay numbers, name lists stay lists, paths and dates are
    text)."""
    kinds = {a for a in get_args(Settings.model_fields[name].annotation) if a is not type(None)}
    kinds |= {Settings.model_fields[name].annotation}
    if bool in kinds:
        kind: Any = bool | None
    elif int in kinds:
        kind = int | None
    elif any(get_origin(k) is tuple for k in kinds):
        kind = list[str] | None
    else:
        kind = str | None
    return kind, Field(default=None, description=_describe(name))


# The market resource's settings fields are generated from the Settings model: an unset field is
# the QUANT_PIPELINE_* env var, then the model's default; .settings() validates them together.
_MarketSettingsFields = create_model(
    "_MarketSettingsFields",
    __base__=dg.ConfigurableResource,
    **{name: _override_field(name) for name in SETTINGS_FIELDS},
)


class MarketDataResource(_MarketSettingsFields):
    """Where market data comes from: the demo market, Yahoo Finance or a directory of files.

    One source object serves every asset of a run (Dagster gives each run its own copy of the
    resource): Yahoo price histories fetched for ``raw.prices`` are reused for
    ``raw.corporate_actions``, and once Yahoo proved unreachable the later datasets fail at once.
    Subclasses (tests, embedders) override :meth:`build_source` to supply another source.
    """

    yahoo_max_failed_share: float = 0.5
    price_overlap_days: int = 7
    # Plausibility (README "Bad prices"): a move beyond x(1 + spike_threshold) from the previous
    # row that comes back within spike_reversal_days rows is a spike; rows dated after as_of
    # (YYYY-MM-DD, default today in UTC) are quarantined.
    spike_threshold: float = 3.0
    spike_reversal_days: int = 5
    as_of: str | None = None

    def as_of_date(self) -> date:
        """The run's as-of date: ``as_of`` when set, else today (UTC)."""
        return date.fromisoformat(self.as_of) if self.as_of else datetime.now(UTC).date()

    # fetched by yahoo beside the universe, compared with in backtest.benchmarks when present
    benchmark_tickers: list[str] = ["SPY", "IWM"]

    def settings(self) -> Settings:
        """The env-var settings with this resource's set fields on top, validated by one model."""
        return from_env(
            overrides={name: getattr(self, name) for name in SETTINGS_FIELDS},
            origin="resource config",
        )

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

"""The one Dagster ``Definitions`` of quant_pipeline (loaded by workspace.yaml and the CLI).

Each domain module holds its assets, checks, jobs, schedules and sensors (ingestion: the weekly
refresh; curated: the new-prices sensor; orders_automation: the orders and quarterly rebalance
jobs, their schedule and the inbox sensor; alerts: the failure mail sensors); this module only
gathers them, plus the one job that spans every domain.
"""

from __future__ import annotations

import dagster as dg

from quant_pipeline.defs.alerts import AlertsResource, alert_sensors
from quant_pipeline.defs.backtest import backtest_assets
from quant_pipeline.defs.benchmarks import benchmark_assets
from quant_pipeline.defs.checks import asset_checks as contract_checks
from quant_pipeline.defs.curated import curated_assets, curated_jobs, curated_sensors
from quant_pipeline.defs.factors import factor_assets
from quant_pipeline.defs.health import health_assets, health_checks
from quant_pipeline.defs.ingestion import ingestion_assets, ingestion_jobs, ingestion_schedules
from quant_pipeline.defs.integrity import integrity_checks
from quant_pipeline.defs.orders import orders_assets
from quant_pipeline.defs.orders_automation import orders_jobs, orders_schedules, orders_sensors
from quant_pipeline.defs.portfolio import portfolio_assets
from quant_pipeline.defs.publishing import publishing_sensors
from quant_pipeline.defs.reports import report_assets
from quant_pipeline.defs.research import research_assets
from quant_pipeline.defs.research_guards import (
    research_guard_assets,
    research_guard_checks,
    research_guards_job,
)
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.defs.signals import signal_assets
from quant_pipeline.defs.universe import universe_assets
from quant_pipeline.defs.watchlist import watchlist_assets

all_assets = [
    *ingestion_assets,
    *curated_assets,
    *factor_assets,
    *portfolio_assets,
    *backtest_assets,
    *benchmark_assets,
    *report_assets,
    *signal_assets,
    *research_assets,
    *watchlist_assets,
    *universe_assets,
]
# Imported by the CLI and the tests: every check, including the blocking lookahead audit.
asset_checks = [*contract_checks, *integrity_checks, *research_guard_checks]

full_pipeline_job = dg.define_asset_job(
    "full_pipeline_job",
    selection=dg.AssetSelection.all() - dg.AssetSelection.groups("orders"),
    description="Ingest, curate, score, build portfolios and backtest every strategy.",
)


def build_resources(**overrides: object) -> dict[str, object]:
    """Default resources (settings from env at use time); tests pass explicit ones."""
    resources: dict[str, object] = {
        "warehouse": WarehouseResource(),
        "market": MarketDataResource(),
        "alerts": AlertsResource(),
    }
    resources.update(overrides)
    return resources


defs = dg.Definitions(
    # research guards (sweeps, walk-forward, DSR/PBO, exposures) run in the UI's full job and
    # their own job, not in all_assets: a 144-variant sweep would multiply every end-to-end
    # test's time
    assets=[*all_assets, *research_guard_assets, *orders_assets, *health_assets],
    asset_checks=[*asset_checks, *health_checks],
    jobs=[full_pipeline_job, research_guards_job, *ingestion_jobs, *curated_jobs, *orders_jobs],
    schedules=[*ingestion_schedules, *orders_schedules],
    sensors=[*curated_sensors, *orders_sensors, *alert_sensors, *publishing_sensors],
    resources=build_resources(),
    executor=dg.in_process_executor,
)

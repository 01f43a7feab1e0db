"""The weekly refresh: schedule, job selection, and the source chosen by env var or config."""

from datetime import datetime

import dagster as dg

from quant_pipeline.definitions import defs
from quant_pipeline.defs.ingestion import weekly_refresh_schedule
from quant_pipeline.defs.resources import MarketDataResource
from quant_pipeline.storage.warehouse import Warehouse
from quant_pipeline_tests.pins import DEMO_END_ISO


def _keys(assets_defs) -> set[str]:
    return {key.to_user_string() for a in assets_defs for key in a.keys}


def test_the_saturday_tick_requests_a_run_of_every_ingestion_and_curated_asset():
    from quant_pipeline.defs.curated import curated_assets
    from quant_pipeline.defs.ingestion import ingestion_assets

    # Saturday 21 November 2026, 07:00 New York
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 21, 7, 0))
    (request,) = weekly_refresh_schedule.evaluate_tick(context).run_requests
    job_name = request.job_name or weekly_refresh_schedule.job_name
    assert job_name == "weekly_refresh_job"
    job = defs.resolve_job_def(job_name)
    targeted = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert targeted == _keys(ingestion_assets) | _keys(curated_assets)
    assert "raw/prices" in targeted and "curated/prices" in targeted
    assert not any(k.split("/")[0] in {"factors", "portfolio", "backtest"} for k in targeted)


def test_the_source_comes_from_the_env_var_unless_the_market_resource_config_sets_it(
    monkeypatch, tmp_path
):
    monkeypatch.setenv("QUANT_PIPELINE_SOURCE", "files")
    monkeypatch.setenv("QUANT_PIPELINE_DATA_DIR", str(tmp_path))
    assert MarketDataResource().settings().source == "files"
    assert MarketDataResource().settings().data_dir == tmp_path
    assert MarketDataResource(source="yahoo").settings().source == "yahoo"
    monkeypatch.setenv("QUANT_PIPELINE_SOURCE", "demo")
    assert MarketDataResource().settings().source == "demo"


def test_the_refresh_job_takes_its_source_from_dagster_resource_config(tmp_path, monkeypatch):
    monkeypatch.setenv("QUANT_PIPELINE_SOURCE", "yahoo")  # overridden by the run config below
    path = tmp_path / "quant.duckdb"
    run_config = {
        "resources": {
            "market": {
                "config": {
                    "source": "demo",
                    "demo_tickers": 60,
                    "demo_start": "2016-01-01",
                    "demo_end": DEMO_END_ISO,
                }
            },
            "warehouse": {"config": {"path": str(path)}},
        }
    }
    job = defs.resolve_job_def("weekly_refresh_job")
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(run_config=run_config, instance=instance)
    assert result.success
    warehouse = Warehouse(path)
    assert warehouse.read_table("raw.prices")["source"].unique().to_list() == ["demo"]
    assert warehouse.row_count("curated.prices") > 0
    assert not warehouse.has_table("backtest.daily")  # the refresh stops at the curated layer

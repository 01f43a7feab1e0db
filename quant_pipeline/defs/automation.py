"""Reacting to new data: when fresh curated prices land, rebuild everything downstream.

The weekly refresh schedule (``weekly_refresh_job``) only fetches and curates. ``new_prices_sensor``
watches ``curated/prices``: each new materialization made by a run that did not already rebuild
the chain (the weekly refresh, a UI materialization of the curated group) requests one
``downstream_refresh_job`` run — factors, portfolios, backtests, reports and research — so the
warehouse never shows new prices next to last week's scores. Runs that built the chain themselves
(``quant-pipeline run``, ``full_pipeline_job``, the quarterly rebalance) are skipped, with the
reason shown on the tick. The run key is the triggering run's id, so one refresh never gives
two rebuilds.
"""

import dagster as dg

from quant_pipeline.defs.jobs import full_pipeline_job

WATCHED = dg.AssetKey(["curated", "prices"])
# a run that materialized this asset rebuilt the chain itself
CHAIN_MARKER = dg.AssetKey(["factors", "values"])
CHAIN_STEP = "factors__values"
CHAIN_JOBS = (full_pipeline_job.name, "quarterly_rebalance_job")

downstream_refresh_job = dg.define_asset_job(
    "downstream_refresh_job",
    selection=dg.AssetSelection.all() - dg.AssetSelection.groups("ingestion", "curated", "orders"),
    description="Factors, portfolios, backtests, reports and research from the curated tables.",
)


def rebuilt_the_chain(instance: dg.DagsterInstance, run: dg.DagsterRun | None) -> bool:
    """True when ``run`` (the one that materialized curated prices) also builds the factors:
    its asset selection, else the steps of its execution plan, include ``factors/values``."""
    if run is None:
        return False
    if run.asset_selection:  # empty or None: the whole job, see its plan
        return CHAIN_MARKER in run.asset_selection
    snapshot_id = run.execution_plan_snapshot_id
    plan = instance.get_execution_plan_snapshot(snapshot_id) if snapshot_id else None
    if plan is None:
        return run.job_name in CHAIN_JOBS
    steps = plan.step_keys_to_execute or [step.key for step in plan.steps]
    return CHAIN_STEP in steps


@dg.asset_sensor(
    asset_key=WATCHED,
    job=downstream_refresh_job,
    name="new_prices_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="New curated prices from a refresh: rebuild factors, portfolios and backtests.",
)
def new_prices_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    run_id = asset_event.run_id
    run = context.instance.get_run_by_id(run_id) if run_id else None
    if rebuilt_the_chain(context.instance, run):
        return dg.SkipReason(
            f"curated/prices came from run {run_id} ({run.job_name}), which rebuilt the chain"
        )
    return dg.RunRequest(
        run_key=f"new_prices:{run_id or asset_event.timestamp}",
        tags={"quant_pipeline/trigger": f"curated/prices from run {run_id or 'outside a run'}"},
    )


automation_jobs = [downstream_refresh_job]
automation_sensors = [new_prices_sensor]

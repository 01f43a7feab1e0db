"""Publishing the readers' copy of the warehouse when a run completes.

``published_copy_sensor`` (on by default under ``make ui``) copies the warehouse to
``<name>.published.duckdb`` after every successful run of this code location
(``Warehouse.publish``: under the write lock, then an atomic rename). ``quant-pipeline sql``,
``tables`` and ``orders`` read that copy, so they never block a run and always see one completed
run. ``quant-pipeline run`` publishes itself at its end.
"""

import dagster as dg

from quant_pipeline.settings import from_env
from quant_pipeline.storage.warehouse import Warehouse


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="published_copy_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After each successful run, publish the readers' copy of the warehouse.",
)
def published_copy_sensor(context: dg.RunStatusSensorContext):
    warehouse = Warehouse(from_env().warehouse)
    if not warehouse.path.exists():
        return dg.SkipReason(f"no warehouse at {warehouse.path} yet")
    target = warehouse.publish()
    context.log.info(f"run {context.dagster_run.run_id} completed: published {target}")
    return dg.SkipReason(f"published {target} after run {context.dagster_run.run_id}")


publishing_sensors = [published_copy_sensor]

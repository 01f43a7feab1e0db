"""Publishing the readers' copy of the warehouse when a run completes.

``published_copy_sensor`` (on by default under ``make ui``) copies the warehouse to
``<name>.published.duckdb`` after every successful run of this code location
(``Warehouse.publish``: under the write lock, then an atomic rename). ``quant-pipeline sql``,
``tables`` and ``orders`` read that copy, so they never block a run and always see one completed
run. ``quant-pipeline run`` publishes itself at its end.

The sensor publishes only what a completed run left: it takes the warehouse's run lock without
waiting (a run holding it is writing; that run's own completion publishes, by this sensor or by
the CLI) and skips when a run that ended after this one failed or was canceled (the live file
may hold its partial writes; the copy stays at the last completed run until the next success).
"""

import dagster as dg

from quant_pipeline.settings import from_env
from quant_pipeline.storage.run_lock import WarehouseBusyError, hold_run_lock
from quant_pipeline.storage.warehouse import Warehouse


def failed_since(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[str]:
    """Ids of the runs that failed or were canceled after ``run`` ended."""
    record = instance.get_run_record_by_id(run.run_id)
    ended = record.end_time if record is not None else None
    if ended is None:
        return []
    later = instance.get_run_records(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED],
        ),
        limit=50,
    )
    return [r.dagster_run.run_id for r in later if (r.end_time or 0) > ended]


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="published_copy_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After each successful run, publish the readers' copy of the warehouse.",
)
def published_copy_sensor(context: dg.RunStatusSensorContext):
    warehouse = Warehouse(from_env().warehouse)
    run_id = context.dagster_run.run_id
    if not warehouse.path.exists():
        return dg.SkipReason(f"no warehouse at {warehouse.path} yet")
    try:
        # checked under the lock: a run that starts and fails after the check cannot slip in
        with hold_run_lock(warehouse.path, "published_copy_sensor", timeout=0):
            failed = failed_since(context.instance, context.dagster_run)
            if failed:
                return dg.SkipReason(
                    f"run {run_id} succeeded but run {failed[0]} failed after it: the readers' "
                    "copy stays at the last completed run"
                )
            target = warehouse.publish()
    except WarehouseBusyError as exc:
        return dg.SkipReason(f"not published after run {run_id}: {exc}")
    context.log.info(f"run {run_id} completed: published {target}")
    return dg.SkipReason(f"published {target} after run {run_id}")


publishing_sensors = [published_copy_sensor]

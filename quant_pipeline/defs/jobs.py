"""Jobs and schedules."""

import dagster as dg

full_pipeline_job = dg.define_asset_job(
    "full_pipeline_job",
    selection=dg.AssetSelection.all() - dg.AssetSelection.groups("orders"),
    description="Ingest, curate, score, build portfolios and backtest every strategy.",
)

refresh_job = dg.define_asset_job(
    "weekly_refresh_job",
    selection=dg.AssetSelection.groups("ingestion", "curated"),
    description="Fetch what is new from the configured source and rebuild the curated tables.",
)

weekly_refresh_schedule = dg.ScheduleDefinition(
    name="weekly_refresh_schedule",
    job=refresh_job,
    cron_schedule="0 7 * * 6",  # Saturday 07:00, after Friday's close and vendor corrections
    execution_timezone="America/New_York",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Weekly data refresh, Saturday morning New York time.",
)

jobs = [full_pipeline_job, refresh_job]
schedules = [weekly_refresh_schedule]

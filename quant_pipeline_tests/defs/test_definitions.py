import dagster as dg

from quant_pipeline.definitions import defs
from quant_pipeline.defs.ingestion import weekly_refresh_schedule


def test_definitions_load_with_every_contract_asset():
    repo = defs.get_repository_def()
    keys = {key.to_user_string() for key in repo.asset_graph.get_all_asset_keys()}
    for table in [
        "raw/prices",
        "raw/fundamentals",
        "raw/securities",
        "curated/prices",
        "curated/fundamentals",
        "curated/securities",
        "factors/scores",
        "portfolio/target_weights",
        "backtest/daily",
        "backtest/metrics",
        "backtest/trades",
    ]:
        assert table in keys, table


def test_every_asset_has_a_group_a_description_and_kinds():
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.group_name in {
            "ingestion",
            "curated",
            "factors",
            "portfolio",
            "backtest",
            "research",
            "research_guards",
            "orders",
            "universe",
            "watchlist",
        }, key
        assert node.description, key
        assert node.kinds, key


def test_weekly_refresh_runs_saturday_morning_new_york_and_starts_running():
    assert weekly_refresh_schedule.cron_schedule == "0 7 * * 6"
    assert weekly_refresh_schedule.execution_timezone == "America/New_York"
    assert weekly_refresh_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    context = dg.build_schedule_context(
        scheduled_execution_time=__import__("datetime").datetime(2026, 11, 21, 7, 0)
    )
    requests = list(weekly_refresh_schedule.evaluate_tick(context).run_requests or [])
    assert len(requests) == 1

"""The quarterly rebalance schedule and the holdings inbox sensor, with explicit cursors."""

import hashlib
import json
from datetime import date, datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from quant_pipeline.definitions import defs
from quant_pipeline.defs.health import health_assets, health_checks
from quant_pipeline.defs.orders import ORDERS_OP, orders_assets
from quant_pipeline.defs.orders_automation import (
    first_session_of_quarter,
    holdings_inbox_sensor,
    orders_job,
    quarterly_rebalance_schedule,
)
from quant_pipeline.storage.warehouse import Warehouse
from quant_pipeline_tests.defs.tiny_market import build_warehouse, resources

NY = ZoneInfo("America/New_York")
GOOD = "ticker,shares\nA,100\nE,50\n"
BAD = "ticker,shares\nA,-1\nZZZZ,2\n"


@pytest.fixture
def inbox(tmp_path, monkeypatch):
    folder = tmp_path / "inbox"
    folder.mkdir()
    monkeypatch.setenv("QUANT_PIPELINE_INBOX", str(folder))
    monkeypatch.setenv("QUANT_PIPELINE_PORTFOLIOS", str(tmp_path / "portfolios.yaml"))
    monkeypatch.setenv("QUANT_PIPELINE_OUTBOX", str(tmp_path / "outbox"))
    return folder


def _tick(cursor=None):
    context = dg.build_sensor_context(cursor=cursor)
    return holdings_inbox_sensor.evaluate_tick(context)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_a_new_holdings_file_requests_one_orders_run_keyed_by_name_and_content(inbox):
    (inbox / "my_portfolio.csv").write_text(GOOD)
    result = _tick()
    assert len(result.run_requests) == 1
    request = result.run_requests[0]
    assert request.run_key == f"my_portfolio.csv:{_sha(GOOD)}"
    assert request.job_name in (None, "orders_job")
    config = request.run_config["ops"][ORDERS_OP]["config"]
    assert config["portfolio"] == "my_portfolio"
    assert config["holdings_file"] == str((inbox / "my_portfolio.csv").resolve())
    assert config["holdings_sha256"] == _sha(GOOD)
    assert json.loads(result.cursor) == {"my_portfolio.csv": _sha(GOOD)}


def test_the_same_content_again_requests_nothing(inbox):
    (inbox / "my_portfolio.csv").write_text(GOOD)
    cursor = json.dumps({"my_portfolio.csv": _sha(GOOD)})
    result = _tick(cursor)
    assert not result.run_requests
    assert "no new or changed holdings files" in result.skip_message
    assert json.loads(result.cursor) == {"my_portfolio.csv": _sha(GOOD)}


def test_changed_content_requests_a_new_run_and_moves_the_cursor(inbox):
    (inbox / "my_portfolio.csv").write_text(GOOD)
    first = _tick()
    changed = GOOD + "B,3\n"
    (inbox / "my_portfolio.csv").write_text(changed)
    second = _tick(first.cursor)
    assert [r.run_key for r in second.run_requests] == [f"my_portfolio.csv:{_sha(changed)}"]
    assert json.loads(second.cursor) == {"my_portfolio.csv": _sha(changed)}
    assert not _tick(second.cursor).run_requests


def test_only_csv_files_count_and_removed_files_leave_the_cursor(inbox):
    (inbox / "a.csv").write_text(GOOD)
    (inbox / "notes.txt").write_text("hello")
    (inbox / ".gitkeep").write_text("")
    (inbox / ".~lock.a.csv#").write_text("")
    cursor = json.dumps({"gone.csv": "abc"})
    result = _tick(cursor)
    assert [r.run_key.split(":")[0] for r in result.run_requests] == ["a.csv"]
    assert set(json.loads(result.cursor)) == {"a.csv"}


def test_a_garbage_cursor_or_missing_inbox_does_not_crash_the_sensor(inbox, monkeypatch):
    (inbox / "a.csv").write_text(GOOD)
    assert len(_tick("not json").run_requests) == 1
    monkeypatch.setenv("QUANT_PIPELINE_INBOX", str(inbox / "nope"))
    result = _tick()
    assert not result.run_requests
    assert "does not exist" in result.skip_message


def test_a_portfolios_yaml_entry_owning_the_file_names_the_run(inbox, tmp_path):
    (tmp_path / "portfolios.yaml").write_text(
        "portfolios:\n  family:\n    holdings: inbox/family holdings.csv\n    cash: 100\n"
    )
    (inbox / "family holdings.csv").write_text(GOOD)
    (inbox / "other file.csv").write_text(GOOD)
    requests = {r.run_config["ops"][ORDERS_OP]["config"]["portfolio"] for r in _tick().run_requests}
    assert requests == {"family", "other_file"}


def _execute(tmp_path, run_config):
    path = tmp_path / "quant.duckdb"
    build_warehouse(path)
    job_defs = dg.Definitions(
        assets=[*orders_assets, *health_assets],
        asset_checks=health_checks,
        jobs=[orders_job],
        resources=resources(path),
    )
    job = job_defs.resolve_job_def("orders_job")
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(
            run_config=run_config, instance=instance, raise_on_error=False
        )
    return result, Warehouse(path)


def test_a_bad_file_gets_a_run_request_whose_run_fails_with_every_bad_row(inbox, tmp_path):
    (inbox / "bad.csv").write_text(BAD)
    result = _tick()
    assert len(result.run_requests) == 1  # the sensor does not judge the file; the run does
    config = result.run_requests[0].run_config
    config["ops"][ORDERS_OP]["config"].update(as_of="2024-03-28", strategy="magic_formula")
    run, wh = _execute(tmp_path, config)
    assert not run.success
    failure = next(e for e in run.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message
    assert "line 2: shares '-1' is negative" in message
    assert "line 3: ticker 'ZZZZ' is not a known ticker" in message
    assert not wh.has_table("orders.orders")


def test_a_good_file_run_writes_the_packet_and_the_live_portfolio_health(inbox, tmp_path):
    (inbox / "my_portfolio.csv").write_text(GOOD)
    config = _tick().run_requests[0].run_config
    config["ops"][ORDERS_OP]["config"].update(
        as_of="2024-03-28", strategy="magic_formula", commission=False
    )
    run, wh = _execute(tmp_path, config)
    assert run.success  # failed health checks do not fail the run (they are not blocking)
    materialized = {
        e.asset_key.to_user_string() for e in run.all_events if e.is_step_materialization
    }
    assert {"orders/orders", "orders/packets", "orders/holdings_value"} <= materialized
    assert (tmp_path / "outbox" / "2024-03-28_my_portfolio_orders.csv").exists()
    assert wh.read_table("orders.packets")["cash_after"][0] == pytest.approx(69.0)


# ---- schedule ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "first"),
    [
        (date(2023, 1, 2), date(2023, 1, 3)),  # New Year's Day observed on Monday Jan 2
        (date(2023, 1, 5), date(2023, 1, 3)),
        (date(2022, 4, 1), date(2022, 4, 1)),  # a Friday, a normal session
        (date(2022, 1, 3), date(2022, 1, 3)),  # Jan 1 2022 was a Saturday, not observed
        (date(2024, 7, 1), date(2024, 7, 1)),
        (date(2023, 10, 1), date(2023, 10, 2)),  # a Sunday
        (date(2024, 4, 1), date(2024, 4, 1)),  # after Good Friday 2024-03-29
    ],
)
def test_first_session_of_quarter_follows_the_nyse_calendar(day, first):
    assert first_session_of_quarter(day) == first


def _schedule_tick(when: datetime):
    return quarterly_rebalance_schedule.evaluate_tick(
        dg.build_schedule_context(scheduled_execution_time=when)
    )


@pytest.fixture
def portfolios(tmp_path, monkeypatch):
    path = tmp_path / "portfolios.yaml"
    path.write_text(
        "portfolios:\n  fifty:\n    capital: 50000\n  family:\n    holdings: family.csv\n"
    )
    monkeypatch.setenv("QUANT_PIPELINE_PORTFOLIOS", str(path))
    return path


def test_the_schedule_skips_the_new_year_holiday_and_runs_the_next_day(portfolios):
    holiday = _schedule_tick(datetime(2023, 1, 2, 18, 0, tzinfo=NY))
    assert not holiday.run_requests
    assert "2023-01-03 is" in holiday.skip_message
    result = _schedule_tick(datetime(2023, 1, 3, 18, 0, tzinfo=NY))
    assert len(result.run_requests) == 1
    request = result.run_requests[0]
    assert request.run_key == "quarterly-rebalance-2023-01-03"
    assert request.run_config["ops"][ORDERS_OP]["config"] == {
        "all_portfolios": True,
        "as_of": "2023-01-03",
    }
    assert request.tags["quant_pipeline/portfolios"] == "fifty,family"


def test_the_schedule_runs_on_a_normal_quarter_start_and_skips_the_days_after(portfolios):
    assert len(_schedule_tick(datetime(2022, 4, 1, 18, 0, tzinfo=NY)).run_requests) == 1
    later = _schedule_tick(datetime(2022, 4, 4, 18, 0, tzinfo=NY))
    assert not later.run_requests
    assert "2022-04-01 is" in later.skip_message


def test_the_schedule_skips_when_no_portfolio_is_configured(tmp_path, monkeypatch):
    monkeypatch.setenv("QUANT_PIPELINE_PORTFOLIOS", str(tmp_path / "none.yaml"))
    result = _schedule_tick(datetime(2022, 4, 1, 18, 0, tzinfo=NY))
    assert not result.run_requests
    assert "no portfolios" in result.skip_message


def test_the_schedule_fires_at_18h_new_york_on_days_1_to_7_of_quarter_months():
    assert quarterly_rebalance_schedule.cron_schedule == "0 18 1-7 1,4,7,10 *"
    assert quarterly_rebalance_schedule.execution_timezone == "America/New_York"
    assert quarterly_rebalance_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert holdings_inbox_sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_the_schedule_run_config_is_valid_for_the_quarterly_job(portfolios):
    request = _schedule_tick(datetime(2022, 4, 1, 18, 0, tzinfo=NY)).run_requests[0]
    job = defs.resolve_job_def("quarterly_rebalance_job")
    dg.validate_run_config(job, request.run_config)
    selected = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert {"raw/prices", "portfolio/target_weights", "orders/orders"} <= selected


def test_the_full_pipeline_job_leaves_the_orders_group_out():
    job = defs.resolve_job_def("full_pipeline_job")
    selected = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert not {k for k in selected if k.startswith("orders/")}
    assert "portfolio/target_weights" in selected


def test_two_inbox_files_mapping_to_one_portfolio_are_both_refused_naming_the_clash(inbox, capsys):
    (inbox / "a b.csv").write_text(GOOD)
    (inbox / "a_b.csv").write_text("ticker,shares\nA,1\n")
    (inbox / "other.csv").write_text(GOOD)
    result = _tick()
    assert [r.run_config["ops"][ORDERS_OP]["config"]["portfolio"] for r in result.run_requests] == [
        "other"
    ]
    assert "inbox files 'a b.csv', 'a_b.csv' all map to portfolio 'a_b'" in capsys.readouterr().err
    # Neither is remembered: once one is renamed, both are processed.
    assert json.loads(result.cursor) == {"other.csv": _sha(GOOD)}
    (inbox / "a b.csv").rename(inbox / "a_c.csv")
    names = {
        r.run_config["ops"][ORDERS_OP]["config"]["portfolio"]
        for r in _tick(result.cursor).run_requests
    }
    assert names == {"a_b", "a_c"}


def test_an_inbox_file_over_the_size_limit_is_skipped_with_the_reason(inbox, capsys):
    from quant_pipeline.core.accounts.holdings import MAX_FILE_BYTES

    (inbox / "huge.csv").write_bytes(b"ticker,shares\n" + b"A,1\n" * (MAX_FILE_BYTES // 4 + 1))
    result = _tick()
    assert not result.run_requests
    assert "larger than 1,000,000 bytes" in capsys.readouterr().err

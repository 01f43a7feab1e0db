"""Alert mail for a failed run and a failed check, received by a local SMTP server (aiosmtpd)."""

from __future__ import annotations

import email
import socket

import dagster as dg
import pytest
from aiosmtpd.controller import Controller

from quant_pipeline.app.alerts import (
    AlertConfigError,
    AlertDeliveryError,
    EmailSettings,
    FailedCheck,
    email_settings,
    failed_run_message,
    send,
)
from quant_pipeline.defs.alerts import (
    AlertsResource,
    failed_check_alert_sensor,
    run_failure_alert_sensor,
)
from quant_pipeline.defs.health import health_assets, health_checks
from quant_pipeline.defs.orders import orders_packets
from quant_pipeline_tests.defs.tiny_market import build_warehouse, materialize, resources


class _Inbox:
    def __init__(self):
        self.messages: list[email.message.Message] = []
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.envelopes.append(envelope)
        self.messages.append(email.message_from_bytes(envelope.original_content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    """A plain SMTP server on 127.0.0.1 that keeps every message it receives."""
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield controller, inbox
    finally:
        controller.stop()


def _alerts(controller) -> AlertsResource:
    return AlertsResource(
        host="127.0.0.1",
        port=controller.port,
        security="none",
        sender="pipeline@example.com",
        recipients=["me@example.com", "team@example.com"],
    )


def _body(message) -> str:
    return message.get_payload(decode=True).decode()


# ---- settings --------------------------------------------------------------------------------


def test_alerts_are_off_without_a_host_or_recipients():
    assert email_settings(env={}) is None
    assert email_settings(env={"QUANT_PIPELINE_ALERT_SMTP_HOST": "smtp.example.com"}) is None
    assert email_settings(env={"QUANT_PIPELINE_ALERT_TO": "me@example.com"}) is None


def test_settings_come_from_env_and_resource_config_overrides_them_field_by_field():
    env = {
        "QUANT_PIPELINE_ALERT_SMTP_HOST": "smtp.example.com",
        "QUANT_PIPELINE_ALERT_TO": "a@example.com, b@example.com",
        "QUANT_PIPELINE_ALERT_SMTP_SECURITY": "SSL",
        "QUANT_PIPELINE_ALERT_SMTP_USER": "bot",
        "QUANT_PIPELINE_ALERT_SMTP_PASSWORD": "hunter2",
    }
    settings = email_settings(env=env)
    assert settings.recipients == ("a@example.com", "b@example.com")
    assert (settings.security, settings.port) == ("ssl", 465)  # the ssl default port
    assert settings.sender == "quant-pipeline@smtp.example.com"
    overridden = email_settings({"port": 2525, "recipients": ["c@example.com"]}, env=env)
    assert (overridden.port, overridden.recipients, overridden.host) == (
        2525,
        ("c@example.com",),
        "smtp.example.com",
    )


def test_the_password_is_never_in_the_repr():
    settings = email_settings(
        env={
            "QUANT_PIPELINE_ALERT_SMTP_HOST": "h",
            "QUANT_PIPELINE_ALERT_TO": "a@example.com",
            "QUANT_PIPELINE_ALERT_SMTP_USER": "bot",
            "QUANT_PIPELINE_ALERT_SMTP_PASSWORD": "hunter2",
        }
    )
    assert "hunter2" not in repr(settings)
    assert settings.password == "hunter2"


@pytest.mark.parametrize(
    "env, words",
    [
        ({"QUANT_PIPELINE_ALERT_SMTP_SECURITY": "tls"}, "SMTP_SECURITY='tls'"),
        ({"QUANT_PIPELINE_ALERT_SMTP_PORT": "x"}, "SMTP_PORT='x'"),
        ({"QUANT_PIPELINE_ALERT_TO": "nobody"}, "QUANT_PIPELINE_ALERT_TO"),
        ({"QUANT_PIPELINE_ALERT_SMTP_USER": "bot"}, "go together"),
    ],
)
def test_bad_settings_name_the_variable(env, words):
    base = {"QUANT_PIPELINE_ALERT_SMTP_HOST": "h", "QUANT_PIPELINE_ALERT_TO": "a@example.com"}
    with pytest.raises(AlertConfigError, match=words.replace("(", r"\(")):
        email_settings(env={**base, **env})


def test_an_unreachable_server_is_an_error_naming_the_server_not_the_password():
    settings = EmailSettings(
        host="127.0.0.1",
        recipients=("a@example.com",),
        sender="s@example.com",
        port=_free_port(),  # nothing listens there
        security="none",
        username="bot",
        password="hunter2",
        timeout_seconds=5,
    )
    message = failed_run_message(settings, job_name="j", run_id="r", reason="boom")
    with pytest.raises(AlertDeliveryError) as info:
        send(settings, message)
    assert f"127.0.0.1:{settings.port}" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_the_failed_run_message_lists_the_cause_steps_and_checks():
    settings = EmailSettings(host="h", recipients=("a@example.com",), sender="s@x.com", port=25)
    message = failed_run_message(
        settings,
        job_name="weekly_refresh_job",
        run_id="abc",
        reason="SourceError: yahoo unreachable",
        failed_steps=[("raw__prices", "SourceError: yahoo unreachable")],
        failed_checks=[FailedCheck("curated/prices", "no_gaps", "ERROR", "3 gaps")],
    )
    assert message["Subject"] == "[quant-pipeline] FAILED run: weekly_refresh_job"
    assert message["To"] == "a@example.com"
    body = message.get_content()
    assert "The run abc of job weekly_refresh_job failed." in body
    assert "Reason: SourceError: yahoo unreachable" in body
    assert "  - raw__prices: SourceError: yahoo unreachable" in body
    assert "  - curated/prices / no_gaps (ERROR): 3 gaps" in body


# ---- the sensors, against the local server ----------------------------------------------------


def _failure_context(instance, result, alerts):
    [failure] = [
        e
        for e in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        if e.dagster_event is not None
    ]
    return dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=failure.dagster_event,
        resources={"alerts": alerts},
    ).for_run_failure()


def test_a_failed_run_of_a_shipped_job_sends_its_root_cause(smtp, tmp_path, monkeypatch):
    controller, inbox = smtp
    from quant_pipeline.definitions import defs

    monkeypatch.setenv("QUANT_PIPELINE_SOURCE", "files")
    monkeypatch.setenv("QUANT_PIPELINE_DATA_DIR", str(tmp_path / "no_such_folder"))
    monkeypatch.setenv("QUANT_PIPELINE_WAREHOUSE", str(tmp_path / "quant.duckdb"))
    job = defs.resolve_job_def("weekly_refresh_job")
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        run_failure_alert_sensor(_failure_context(instance, result, _alerts(controller)))
    [message] = inbox.messages
    assert message["Subject"] == "[quant-pipeline] FAILED run: weekly_refresh_job"
    assert sorted(inbox.envelopes[0].rcpt_tos) == ["me@example.com", "team@example.com"]
    body = _body(message)
    assert f"The run {result.run_id} of job weekly_refresh_job failed." in body
    assert "no_such_folder" in body  # the root cause names the missing folder
    assert "DagsterExecutionStepExecutionError" not in body


def test_the_failure_sensor_sends_nothing_when_alerts_are_off(tmp_path, monkeypatch):
    for var in ("SMTP_HOST", "TO"):
        monkeypatch.delenv(f"QUANT_PIPELINE_ALERT_{var}", raising=False)

    @dg.op
    def boom():
        raise ValueError("boom")

    @dg.job
    def failing_job():
        boom()

    with dg.DagsterInstance.ephemeral() as instance:
        result = failing_job.execute_in_process(instance=instance, raise_on_error=False)
        outcome = run_failure_alert_sensor(_failure_context(instance, result, AlertsResource()))
    assert isinstance(outcome, dg.SkipReason)
    assert "alerts are off" in outcome.skip_message


def test_a_failed_health_check_sends_the_breaches(smtp, tmp_path, monkeypatch):
    controller, inbox = smtp
    monkeypatch.setenv("QUANT_PIPELINE_PORTFOLIOS", str(tmp_path / "portfolios.yaml"))
    monkeypatch.setenv("QUANT_PIPELINE_OUTBOX", str(tmp_path / "outbox"))
    path = tmp_path / "quant.duckdb"
    build_warehouse(path)
    holdings = tmp_path / "mine.csv"
    holdings.write_text("ticker,shares\nA,100\nE,50\n")  # 93.75% in one name and one sector
    config = {
        "portfolio": "mine",
        "strategy": "magic_formula",
        "holdings_file": str(holdings),
        "as_of": "2024-03-28",
    }
    assert materialize([orders_packets], path, config).success
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [*health_assets, *health_checks], resources=resources(path), instance=instance
        )
        assert result.success  # health breaches warn through checks; the run itself succeeds
        [success] = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)
        context = dg.build_run_status_sensor_context(
            sensor_name="failed_check_alert_sensor",
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            dagster_event=success.dagster_event,
            resources={"alerts": _alerts(controller)},
        )
        failed_check_alert_sensor(context)
    [message] = inbox.messages
    assert message["Subject"].startswith("[quant-pipeline] FAILED check: ")
    for name in ("drawdown_within_limit", "position_weight_within_cap", "sector_weight_within_cap"):
        assert name in message["Subject"]
    body = _body(message)
    assert "finished with failed checks" in body
    assert "orders/holdings_value / drawdown_within_limit (ERROR)" in body


def test_a_run_whose_checks_pass_sends_nothing(smtp):
    controller, inbox = smtp

    @dg.asset
    def thing():
        return 1

    @dg.asset_check(asset=thing)
    def thing_is_fine():
        return dg.AssetCheckResult(passed=True)

    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([thing, thing_is_fine], instance=instance)
        [success] = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)
        context = dg.build_run_status_sensor_context(
            sensor_name="failed_check_alert_sensor",
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            dagster_event=success.dagster_event,
            resources={"alerts": _alerts(controller)},
        )
        outcome = failed_check_alert_sensor(context)
    assert isinstance(outcome, dg.SkipReason)
    assert inbox.messages == []

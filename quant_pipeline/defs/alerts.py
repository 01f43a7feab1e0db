"""Alerts by email: a failed run of any job, and a run whose asset checks failed.

Both sensors are on by default and do nothing until alerts are configured (the ``alerts``
resource or the ``QUANT_PIPELINE_ALERT_*`` env vars, see :mod:`quant_pipeline.app.alerts`):

* ``run_failure_alert_sensor`` — Dagster's run-failure sensor over every job of this code
  location: one mail per failed run with the root cause of each failed step and any failed check.
* ``failed_check_alert_sensor`` — a run-status sensor on successful runs: one mail per run in which
  an asset check failed (live-portfolio health breaches, contract checks) without failing the run.
"""

from __future__ import annotations

import dagster as dg

from quant_pipeline.app.alerts import (
    AlertDeliveryError,
    EmailSettings,
    FailedCheck,
    email_settings,
    failed_checks_message,
    failed_run_message,
    send,
)


class AlertsResource(dg.ConfigurableResource):
    """Where alert mail goes; unset fields fall back to the QUANT_PIPELINE_ALERT_* env vars."""

    host: str | None = None
    port: int | None = None
    sender: str | None = None
    recipients: list[str] | None = None
    security: str | None = None
    username: str | None = None
    password: str | None = None

    def settings(self) -> EmailSettings | None:
        """The mail settings, or None when alerts are off."""
        return email_settings(
            {
                "host": self.host,
                "port": self.port,
                "sender": self.sender,
                "recipients": self.recipients,
                "security": self.security,
                "username": self.username,
                "password": self.password,
            }
        )


def root_cause(error) -> str:
    """The innermost cause of a serialized error, as ``ClassName: first line``."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    message = (error.message or "").strip().splitlines()
    first = message[0] if message else ""
    # SerializableErrorInfo.message already starts with the class name ("ValueError: ...").
    return first or error.cls_name or "unknown error"


def failed_checks_of_run(instance: dg.DagsterInstance, run_id: str) -> list[FailedCheck]:
    """Every asset check evaluation of ``run_id`` that did not pass, in event order."""
    out = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data
        if evaluation.passed:
            continue
        out.append(
            FailedCheck(
                asset=evaluation.asset_key.to_user_string(),
                check=evaluation.check_name,
                severity=evaluation.severity.value,
                description=evaluation.description or "no description",
            )
        )
    return out


def _deliver(context, settings: EmailSettings, message) -> None:
    try:
        send(settings, message)
    except AlertDeliveryError as exc:
        # The sensor tick fails, so the UI shows the undelivered alert; the run itself is untouched.
        context.log.error(str(exc))
        raise
    context.log.info(f"alert sent to {', '.join(settings.recipients)}: {message['Subject']}")


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    description="Email the root cause when any run of this code location fails (if configured).",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, alerts: AlertsResource):
    settings = alerts.settings()
    if settings is None:
        return dg.SkipReason("alerts are off: set QUANT_PIPELINE_ALERT_SMTP_HOST and _TO")
    run = context.dagster_run
    steps = [
        (event.step_key or "run", root_cause(event.event_specific_data.error))
        for event in context.get_step_failure_events()
    ]
    reason = steps[0][1] if steps else (context.failure_event.message or "the run failed")
    message = failed_run_message(
        settings,
        job_name=run.job_name,
        run_id=run.run_id,
        reason=reason,
        failed_steps=steps,
        failed_checks=failed_checks_of_run(context.instance, run.run_id),
    )
    _deliver(context, settings, message)
    return None


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="failed_check_alert_sensor",
    description="Email the failed checks of a run that succeeded (health breaches; if configured).",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
def failed_check_alert_sensor(context: dg.RunStatusSensorContext, alerts: AlertsResource):
    settings = alerts.settings()
    if settings is None:
        return dg.SkipReason("alerts are off: set QUANT_PIPELINE_ALERT_SMTP_HOST and _TO")
    run = context.dagster_run
    failed = failed_checks_of_run(context.instance, run.run_id)
    if not failed:
        return dg.SkipReason(f"run {run.run_id}: every asset check passed")
    message = failed_checks_message(
        settings, job_name=run.job_name, run_id=run.run_id, failed_checks=failed
    )
    _deliver(context, settings, message)
    return None


alert_sensors = [run_failure_alert_sensor, failed_check_alert_sensor]

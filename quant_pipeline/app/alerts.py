"""Email alerts: who is told, how the mail is sent, and what a failed run or check says.

Off unless configured. Settings come from the environment (or the ``alerts`` resource's config,
which overrides them field by field)::

    QUANT_PIPELINE_ALERT_SMTP_HOST      SMTP server host name                    (required)
    QUANT_PIPELINE_ALERT_TO             comma-separated recipient addresses      (required)
    QUANT_PIPELINE_ALERT_FROM           sender address          (default quant-pipeline@<host>)
    QUANT_PIPELINE_ALERT_SMTP_PORT      port                    (587 starttls, 465 ssl, 25 none)
    QUANT_PIPELINE_ALERT_SMTP_SECURITY  starttls, ssl or none   (default starttls)
    QUANT_PIPELINE_ALERT_SMTP_USER      login user              (optional; with the password)
    QUANT_PIPELINE_ALERT_SMTP_PASSWORD  login password          (optional; never printed or logged)

The password never appears in a ``repr``, a log line, an error or a message body.
"""

from __future__ import annotations

import os
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage

SECURITY_MODES = ("starttls", "ssl", "none")
DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
ENV_PREFIX = "QUANT_PIPELINE_ALERT_"


class AlertConfigError(ValueError):
    """An alert setting has a value that cannot be used (names the variable, never the secret)."""


class AlertDeliveryError(RuntimeError):
    """The SMTP server could not be reached or refused the message."""


@dataclass(frozen=True)
class EmailSettings:
    """How to send alert mail. ``password`` is excluded from ``repr`` and equality output."""

    host: str
    recipients: tuple[str, ...]
    sender: str
    port: int
    security: str = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.security not in SECURITY_MODES:
            raise AlertConfigError(
                f"{ENV_PREFIX}SMTP_SECURITY={self.security!r} is not one of {SECURITY_MODES}"
            )
        if not 0 < self.port < 65536:
            raise AlertConfigError(f"{ENV_PREFIX}SMTP_PORT={self.port} is not a port (1-65535)")
        if not self.recipients or any("@" not in r for r in self.recipients):
            raise AlertConfigError(
                f"{ENV_PREFIX}TO must list addresses like name@example.com, got "
                f"{', '.join(self.recipients) or '(none)'}"
            )
        if (self.username is None) != (self.password is None):
            raise AlertConfigError(
                f"{ENV_PREFIX}SMTP_USER and {ENV_PREFIX}SMTP_PASSWORD go together: "
                "set both or neither"
            )


def email_settings(
    overrides: Mapping[str, object | None] | None = None, env: Mapping[str, str] | None = None
) -> EmailSettings | None:
    """The alert settings, or None when alerts are off (no host or no recipient configured).

    ``overrides`` (resource config: host, port, sender, recipients, security, username, password)
    win over ``env`` (default ``os.environ``) field by field; empty values count as unset.
    """
    env = os.environ if env is None else env
    given = {k: v for k, v in (overrides or {}).items() if v not in (None, "", [], ())}

    def pick(key: str, var: str) -> object | None:
        if key in given:
            return given[key]
        value = env.get(ENV_PREFIX + var, "").strip()
        return value or None

    host = pick("host", "SMTP_HOST")
    recipients = pick("recipients", "TO")
    if host is None or recipients is None:
        return None
    if isinstance(recipients, str):
        recipients = [r.strip() for r in recipients.split(",")]
    security = str(pick("security", "SMTP_SECURITY") or "starttls").lower()
    port = pick("port", "SMTP_PORT")
    try:
        port = int(port) if port is not None else DEFAULT_PORTS.get(security, 587)
    except ValueError as exc:
        raise AlertConfigError(f"{ENV_PREFIX}SMTP_PORT={port!r} is not a whole number") from exc
    return EmailSettings(
        host=str(host),
        recipients=tuple(r for r in recipients if r),
        sender=str(pick("sender", "FROM") or f"quant-pipeline@{host}"),
        port=port,
        security=security,
        username=_str_or_none(pick("username", "SMTP_USER")),
        password=_str_or_none(pick("password", "SMTP_PASSWORD")),
    )


def _str_or_none(value: object | None) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class FailedCheck:
    """One failed asset check of a run: which asset, which check, and what it found."""

    asset: str
    check: str
    severity: str
    description: str


def failed_run_message(
    settings: EmailSettings,
    *,
    job_name: str,
    run_id: str,
    reason: str,
    failed_steps: Sequence[tuple[str, str]] = (),
    failed_checks: Sequence[FailedCheck] = (),
) -> EmailMessage:
    """The mail for a failed run: the job, the run id, the root cause, each failed step's error."""
    lines = [
        f"The run {run_id} of job {job_name} failed.",
        "",
        f"Reason: {reason}",
    ]
    if failed_steps:
        lines += ["", "Failed steps:"]
        lines += [f"  - {step}: {error}" for step, error in failed_steps]
    lines += _check_lines(failed_checks)
    lines += ["", f"Open the run in the Dagster UI: /runs/{run_id}"]
    return _message(settings, f"[quant-pipeline] FAILED run: {job_name}", lines)


def failed_checks_message(
    settings: EmailSettings, *, job_name: str, run_id: str, failed_checks: Sequence[FailedCheck]
) -> EmailMessage:
    """The mail for a run that finished but whose asset checks (e.g. live health) failed."""
    names = ", ".join(sorted({c.check for c in failed_checks}))
    lines = [f"The run {run_id} of job {job_name} finished with failed checks."]
    lines += _check_lines(failed_checks)
    lines += ["", f"Open the run in the Dagster UI: /runs/{run_id}"]
    return _message(settings, f"[quant-pipeline] FAILED check: {names}", lines)


def _check_lines(checks: Sequence[FailedCheck]) -> list[str]:
    if not checks:
        return []
    out = ["", "Failed checks:"]
    for c in checks:
        out.append(f"  - {c.asset} / {c.check} ({c.severity}): {c.description}")
    return out


def _message(settings: EmailSettings, subject: str, lines: list[str]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients)
    message.set_content("\n".join(lines) + "\n")
    return message


def send(settings: EmailSettings, message: EmailMessage) -> None:
    """Deliver ``message``; raises :class:`AlertDeliveryError` naming the server, not the secret."""
    where = f"{settings.host}:{settings.port} ({settings.security})"
    try:
        if settings.security == "ssl":
            context = ssl.create_default_context()
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=settings.timeout_seconds, context=context
            )
        else:
            smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_seconds)
        with smtp:
            if settings.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if settings.username is not None and settings.password is not None:
                smtp.login(settings.username, settings.password)
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        detail = str(exc)
        if settings.password:
            detail = detail.replace(settings.password, "***")
        raise AlertDeliveryError(f"could not send the alert through {where}: {detail}") from None

"""Orders jobs, the quarterly rebalance schedule and the holdings inbox sensor.

* ``orders_job`` — the orders group: one portfolio's packet (run config), then its health.
* ``quarterly_rebalance_job`` — every asset: refresh, rebuild, and every portfolio's packet.
* ``quarterly_rebalance_schedule`` — 18:00 New York on the first NYSE session of January, April,
  July and October (exchange_calendars ``XNYS``: 2023-01-02 was the New Year holiday, so Q1 2023
  starts 2023-01-03). It refreshes the data, rebuilds the chain and writes the packet of every
  portfolio in ``portfolios.yaml`` (one run, ``as_of`` = that day).
* ``holdings_inbox_sensor`` — every 15 s, each new or changed ``*.csv`` in the inbox folder
  (``QUANT_PIPELINE_INBOX``, default ``inbox/``) requests one ``orders_job`` run for it. The run
  key is the file name + its sha256, so the same content never runs twice; the cursor maps file
  name -> hash. The sensor does not parse files: a malformed file gives a run that fails with
  every bad row listed. An unreadable file is logged and retried on the next tick.
"""

import hashlib
import json
from datetime import date
from functools import lru_cache
from pathlib import Path

import dagster as dg
import pandas as pd

from quant_pipeline.app.recommendation import MARKET_TZ
from quant_pipeline.config.portfolios import load_portfolios
from quant_pipeline.core.accounts.holdings import MAX_FILE_BYTES
from quant_pipeline.core.accounts.portfolios import (
    PortfoliosConfig,
    PortfoliosConfigError,
    PortfolioSpec,
    name_clashes,
    portfolio_name,
)
from quant_pipeline.defs.orders import GROUP, ORDERS_OP
from quant_pipeline.settings import inbox_dir, portfolios_file

QUARTER_MONTHS = (1, 4, 7, 10)

orders_job = dg.define_asset_job(
    "orders_job",
    selection=dg.AssetSelection.groups(GROUP),
    description="Orders packet for one portfolio (run config), then the live-portfolio health.",
)

quarterly_rebalance_job = dg.define_asset_job(
    "quarterly_rebalance_job",
    selection=dg.AssetSelection.all(),
    description=(
        "Refresh the data, rebuild factors and target weights, then write the orders packet of "
        "every portfolio in portfolios.yaml."
    ),
)


@lru_cache(maxsize=1)
def _xnys():
    import exchange_calendars as xcals

    return xcals.get_calendar("XNYS")


def first_session_of_quarter(day: date) -> date:
    """The first NYSE trading day of the calendar quarter containing ``day``."""
    start = date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    session = _xnys().date_to_session(pd.Timestamp(start), direction="next")
    return session.date()


@dg.schedule(
    name="quarterly_rebalance_schedule",
    job=quarterly_rebalance_job,
    # Days 1-7 of each quarter's first month; the function keeps only the first NYSE session.
    cron_schedule="0 18 1-7 1,4,7,10 *",
    execution_timezone="America/New_York",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="First NYSE session of each quarter, 18:00 New York: refresh, rebuild, orders.",
)
def quarterly_rebalance_schedule(context: dg.ScheduleEvaluationContext):
    day = context.scheduled_execution_time.astimezone(MARKET_TZ).date()
    first = first_session_of_quarter(day)
    if day != first:
        return dg.SkipReason(f"{day} is not the first NYSE session of its quarter ({first} is)")
    portfolios = load_portfolios(portfolios_file())
    if not portfolios.portfolios:
        return dg.SkipReason(f"no portfolios listed in {portfolios_file()}; nothing to rebalance")
    return dg.RunRequest(
        run_key=f"quarterly-rebalance-{day.isoformat()}",
        run_config={
            "ops": {ORDERS_OP: {"config": {"all_portfolios": True, "as_of": day.isoformat()}}}
        },
        tags={
            "quant_pipeline/as_of": day.isoformat(),
            "quant_pipeline/portfolios": ",".join(portfolios.portfolios),
        },
    )


def _inbox_files(inbox: Path) -> list[Path]:
    return sorted(
        p
        for p in inbox.iterdir()
        if p.is_file() and p.suffix.lower() == ".csv" and not p.name.startswith((".", "~"))
    )


def inbox_portfolio(path: Path, portfolios: PortfoliosConfig) -> str:
    """The portfolio a holdings file feeds: the YAML entry owning it, else its file stem."""
    spec = portfolios.by_holdings_file(path)
    return spec.name if spec else portfolio_name(path.stem)


def _refuse_clashes(
    context: dg.SensorEvaluationContext, files: list[Path], portfolios: PortfoliosConfig
) -> list[Path]:
    """``files`` without those whose portfolio another inbox file also maps to (each clash is
    logged naming every file; none of them is processed until one is renamed or mapped)."""
    clashes = name_clashes({p.name: inbox_portfolio(p, portfolios) for p in files})
    refused = {f for fs in clashes.values() for f in fs}
    for name, names in clashes.items():
        context.log.error(
            f"inbox files {', '.join(repr(n) for n in names)} all map to portfolio {name!r}: "
            "none of them is processed (their packets and live holdings would overwrite each "
            "other); rename all but one, or give each its own entry in the portfolios YAML"
        )
    return [p for p in files if p.name not in refused]


def inbox_run_request(path: Path, digest: str, portfolios: PortfoliosConfig) -> dg.RunRequest:
    """The orders run for one holdings file (its portfolio: the YAML entry or the file stem)."""
    name = inbox_portfolio(path, portfolios)
    return dg.RunRequest(
        run_key=f"{path.name}:{digest}",
        run_config={
            "ops": {
                ORDERS_OP: {
                    "config": {
                        "portfolio": name,
                        "holdings_file": str(path.resolve()),
                        "holdings_sha256": digest,
                    }
                }
            }
        },
        tags={
            "quant_pipeline/portfolio": name,
            "quant_pipeline/holdings_file": path.name,
            "quant_pipeline/holdings_sha256": digest[:16],
        },
    )


@dg.sensor(
    name="holdings_inbox_sensor",
    job=orders_job,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Orders for each new or changed holdings CSV dropped in the inbox folder.",
)
def holdings_inbox_sensor(context: dg.SensorEvaluationContext):
    try:
        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        if not isinstance(seen, dict):
            seen = {}
    except ValueError:
        context.log.warning(f"ignoring an unreadable cursor: {context.cursor!r}")
        seen = {}
    inbox = inbox_dir()
    if not inbox.is_dir():
        return dg.SkipReason(f"inbox folder {inbox} does not exist; create it and drop a CSV")
    try:
        portfolios = load_portfolios(portfolios_file())
    except PortfoliosConfigError as exc:
        context.log.error(f"{exc}; inbox files use default settings")
        portfolios = PortfoliosConfig(defaults=PortfolioSpec(name="defaults"), portfolios={})
    current: dict[str, str] = {}
    requests: list[dg.RunRequest] = []
    try:
        files = _inbox_files(inbox)
    except OSError as exc:
        context.log.error(f"cannot list inbox folder {inbox}: {exc}")
        return dg.SensorResult(skip_reason=f"cannot list {inbox}: {exc}", cursor=context.cursor)
    files = _refuse_clashes(context, files, portfolios)
    for path in files:
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                context.log.error(
                    f"skipping {path}: larger than {MAX_FILE_BYTES:,} bytes, the limit of a "
                    "holdings file"
                )
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:
            context.log.warning(f"cannot read {path}: {exc}; will retry next tick")
            if path.name in seen:
                current[path.name] = seen[path.name]
            continue
        current[path.name] = digest
        if seen.get(path.name) == digest:
            continue
        try:
            requests.append(inbox_run_request(path, digest, portfolios))
        except Exception as exc:  # a sensor tick must never crash on one odd file
            context.log.error(f"skipping {path}: {type(exc).__name__}: {exc}")
            current.pop(path.name, None)
    cursor = json.dumps(current, sort_keys=True)
    if not requests:
        return dg.SensorResult(
            skip_reason=f"no new or changed holdings files in {inbox}", cursor=cursor
        )
    return dg.SensorResult(run_requests=requests, cursor=cursor)


orders_jobs = [orders_job, quarterly_rebalance_job]
orders_schedules = [quarterly_rebalance_schedule]
orders_sensors = [holdings_inbox_sensor]

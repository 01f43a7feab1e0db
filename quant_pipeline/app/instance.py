"""The Dagster instance ``quant-pipeline run`` records its runs in: the project's, the UI's.

The folder is the ``dagster_home`` setting: ``DAGSTER_HOME`` when set (``make ui`` and the
Makefile set it), else ``dagster_home/`` in the working directory, like the warehouse path. A
missing folder is created with the shipped ``dagster.yaml`` (``quant_pipeline/config``), whose
storage lives in the folder itself, so the instance opens without ``DAGSTER_HOME`` in the
environment (the process environment is never modified).

A CLI run is an in-process run of that instance: the Runs page lists it, its materializations
are the assets' history, asset sensors (``new_prices_sensor``) see them, and while it is in
progress it counts against the run queue's ``max_concurrent_runs``. A CLI process killed part-way
leaves its run STARTED, which would hold the queue forever: :func:`fail_orphaned_cli_runs`
marks such runs failed (their process, on this host, is gone) before each CLI run.
"""

from __future__ import annotations

import os
import socket
from importlib.resources import files
from pathlib import Path

import dagster as dg

from quant_pipeline.settings import Settings

LAUNCHED_BY_TAG = "quant_pipeline/launched_by"
PID_TAG = "quant_pipeline/pid"
HOST_TAG = "quant_pipeline/host"
CLI_PROGRAM = "quant-pipeline run"


def shipped_dagster_yaml() -> str:
    """The dagster.yaml the project ships (``dagster_home/dagster.yaml`` is a copy of it)."""
    return files("quant_pipeline.config").joinpath("dagster.yaml").read_text(encoding="utf-8")


def dagster_home(settings: Settings) -> Path:
    """The instance folder of ``settings`` as an absolute path (Dagster requires one), created
    with the shipped dagster.yaml when it does not exist yet."""
    home = settings.dagster_home.expanduser().resolve()
    if not home.exists():
        home.mkdir(parents=True)
        (home / "dagster.yaml").write_text(shipped_dagster_yaml(), encoding="utf-8")
    elif not home.is_dir():
        raise NotADirectoryError(f"DAGSTER_HOME {home} is not a folder")
    return home


def project_instance(settings: Settings) -> dg.DagsterInstance:
    """The persistent Dagster instance in :func:`dagster_home` (close it when done)."""
    return dg.DagsterInstance.from_config(str(dagster_home(settings)))


def cli_run_tags() -> dict[str, str]:
    """Tags of a CLI run: who launched it, and its process (to recognise an orphaned run)."""
    return {LAUNCHED_BY_TAG: CLI_PROGRAM, PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def fail_orphaned_cli_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed every in-progress CLI run of this host whose process is gone; return their
    run ids. (A PID reused since is taken as alive: that run stays until the next check.)"""
    host = socket.gethostname()
    runs = instance.get_runs(
        filters=dg.RunsFilter(
            statuses=[
                dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED,
                dg.DagsterRunStatus.CANCELING,
            ],
            tags={LAUNCHED_BY_TAG: CLI_PROGRAM, HOST_TAG: host},
        )
    )
    failed = []
    for run in runs:
        pid = int(run.tags.get(PID_TAG, "0") or 0)
        if pid and pid != os.getpid() and not _alive(pid):
            instance.report_run_failed(
                run, f"the {CLI_PROGRAM} process (PID {pid} on {host}) ended without finishing"
            )
            failed.append(run.run_id)
    return failed

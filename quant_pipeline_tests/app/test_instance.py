"""``quant-pipeline run`` records its runs in the project's Dagster instance (issue 13, item 11).

The instance folder is DAGSTER_HOME when set, else ``dagster_home/`` in the working directory
(created with the shipped dagster.yaml); every test here works in tmp_path.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg

from quant_pipeline.app.instance import (
    CLI_PROGRAM,
    HOST_TAG,
    LAUNCHED_BY_TAG,
    PID_TAG,
    cli_run_tags,
    dagster_home,
    fail_orphaned_cli_runs,
    project_instance,
    shipped_dagster_yaml,
)
from quant_pipeline.settings import from_env

PROJECT = Path(__file__).resolve().parents[2]


def test_the_projects_dagster_home_holds_the_shipped_dagster_yaml():
    shipped = shipped_dagster_yaml()
    assert (PROJECT / "dagster_home" / "dagster.yaml").read_text(encoding="utf-8") == shipped
    assert "max_concurrent_runs: 1" in shipped
    assert "DAGSTER_HOME" not in shipped.split("\n#")[-1]  # storage needs no env var


def test_without_dagster_home_set_the_cli_uses_dagster_home_in_the_working_directory(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("DAGSTER_HOME")
    monkeypatch.chdir(tmp_path)
    home = dagster_home(from_env())
    assert home == tmp_path / "dagster_home"
    assert (home / "dagster.yaml").read_text(encoding="utf-8") == shipped_dagster_yaml()


def test_dagster_home_overrides_the_default_and_a_relative_one_is_made_absolute(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", "elsewhere/home")
    assert dagster_home(from_env()) == tmp_path / "elsewhere" / "home"
    existing = tmp_path / "mine"
    existing.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(existing))
    assert dagster_home(from_env()) == existing
    assert not (existing / "dagster.yaml").exists()  # a folder of the user's is left as it is


def test_the_instance_opens_without_dagster_home_in_the_environment_and_keeps_runs_inside(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("DAGSTER_HOME")
    monkeypatch.chdir(tmp_path)

    @dg.asset
    def anything() -> int:
        return 1

    with project_instance(from_env()) as instance:
        result = dg.materialize([anything], instance=instance, tags=cli_run_tags())
    assert result.success
    assert (tmp_path / "dagster_home" / "history" / "runs.db").exists()
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as again:
        [run] = again.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert again.get_latest_materialization_event(dg.AssetKey("anything")) is not None


def test_a_cli_run_whose_process_is_gone_is_marked_failed_so_it_does_not_hold_the_queue(
    tmp_path,
):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=60)
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        orphan = instance.add_run(
            dg.DagsterRun(
                job_name="__ASSET_JOB",
                status=dg.DagsterRunStatus.STARTED,
                tags={**cli_run_tags(), PID_TAG: str(gone.pid)},
            )
        )
        alive = instance.add_run(
            dg.DagsterRun(
                job_name="__ASSET_JOB", status=dg.DagsterRunStatus.STARTED, tags=cli_run_tags()
            )
        )
        elsewhere = instance.add_run(
            dg.DagsterRun(
                job_name="__ASSET_JOB",
                status=dg.DagsterRunStatus.STARTED,
                tags={LAUNCHED_BY_TAG: CLI_PROGRAM, PID_TAG: str(gone.pid), HOST_TAG: "other"},
            )
        )
        assert fail_orphaned_cli_runs(instance) == [orphan.run_id]
        status = {r.run_id: r.status for r in instance.get_runs()}
    assert status[orphan.run_id] == dg.DagsterRunStatus.FAILURE
    assert status[alive.run_id] == dg.DagsterRunStatus.STARTED  # this process: alive
    assert status[elsewhere.run_id] == dg.DagsterRunStatus.STARTED  # another host: unknown

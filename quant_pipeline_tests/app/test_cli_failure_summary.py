"""The CLI's failure summary names the root cause in its first line (issue 13, item 10 tail)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import date

import dagster as dg

from quant_pipeline.app import cli
from quant_pipeline_tests.defs import test_incremental_refresh as ti


class Crashing(ti.FakeSource):
    def prices(self, request):
        raise KeyError("adjclose")


def test_a_failed_run_prints_the_exception_the_step_raised_not_dagsters_wrapper(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("QUANT_PIPELINE_REPORTS_DIR", str(tmp_path / "reports"))
    home = tmp_path / "dagster_home"  # missing: the CLI creates it with the shipped dagster.yaml
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    ti._SOURCES["fake"] = Crashing(end=date(2024, 1, 12))
    code = cli.main(
        ["run", "--warehouse", str(tmp_path / "quant.duckdb")],
        resources={"market": ti.FakeMarket(source="demo", key="fake")},
    )
    summary = [line for line in capsys.readouterr().err.splitlines() if line.startswith("step ")]
    assert code == 1
    assert summary == ["step raw__prices failed: KeyError: 'adjclose'"]
    # the run is a run of that instance, as the UI's Runs page lists it
    with dg.DagsterInstance.from_config(str(home)) as instance:
        [run] = instance.get_runs()
    assert run.status == dg.DagsterRunStatus.FAILURE
    assert run.tags["quant_pipeline/launched_by"] == "quant-pipeline run"


def test_a_run_that_cannot_get_the_warehouse_says_in_one_line_which_run_holds_it(
    tmp_path, monkeypatch, capsys
):
    warehouse = tmp_path / "quant.duckdb"
    monkeypatch.setenv("QUANT_PIPELINE_RUN_LOCK_TIMEOUT", "0")
    code = f"""
        import sys
        from quant_pipeline.storage.run_lock import hold_run_lock
        with hold_run_lock({str(warehouse)!r}, "dagster run of full_pipeline_job", "ui-run"):
            print("held", flush=True)
            sys.stdin.read()
    """
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    try:
        assert cli.main(["run", "--warehouse", str(warehouse)]) == 1
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(
        f"quant-pipeline run: WarehouseBusyError: warehouse {warehouse} is in use by run ui-run "
        f"(dagster run of full_pipeline_job, PID {holder.pid} on "
    )
    assert "QUANT_PIPELINE_RUN_LOCK_TIMEOUT=0" in last


def test_a_cause_outside_builtins_is_named_once_not_with_its_module_path():
    class Info:
        cls_name = "WarehouseLockedError"
        message = "quant_pipeline.storage.warehouse.WarehouseLockedError: warehouse w is locked\n"
        cause = None
        context = None

    assert cli.root_cause(Info) == "WarehouseLockedError: warehouse w is locked"


def test_a_failure_description_keeps_its_lines_below_the_first():
    class Info:
        cls_name = "DagsterExecutionStepExecutionError"
        message = "Error occurred while executing op"
        context = None

        class cause:  # noqa: N801 - stands in for dagster's SerializableErrorInfo
            cls_name = "HoldingsError"
            message = "holdings file 'a.csv' is not usable: 2 bad rows\n  line 2: x\n  line 3: y"
            cause = None
            context = None

    assert cli.root_cause(Info) == (
        "HoldingsError: holdings file 'a.csv' is not usable: 2 bad rows\n      line 2: x\n"
        "      line 3: y"
    )

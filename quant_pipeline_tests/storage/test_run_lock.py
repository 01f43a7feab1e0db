"""One run at a time per warehouse, across processes (issue 13: runs queue, not interleave).

Each holder is its own process, as a second ``quant-pipeline run`` or a UI run worker would be.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

import dagster as dg
import pytest

from quant_pipeline.app.cli import failure_lines
from quant_pipeline.defs.resources import WarehouseResource
from quant_pipeline.storage.run_lock import (
    WarehouseBusyError,
    hold_run_lock,
    read_holder,
    run_lock_path,
)


def holder(warehouse, run_id: str = "run-1") -> subprocess.Popen:
    """A process holding the run lock of ``warehouse`` until its stdin closes."""
    code = f"""
        import sys
        from quant_pipeline.storage.run_lock import hold_run_lock
        with hold_run_lock({str(warehouse)!r}, "quant-pipeline run", {run_id!r}, timeout=0):
            print("held", flush=True)
            sys.stdin.read()
    """
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_the_lock_file_sits_beside_the_warehouse(tmp_path):
    assert run_lock_path(tmp_path / "quant.duckdb") == tmp_path / "quant.run.lock"


def test_a_second_run_waits_for_the_first_says_which_run_it_waits_for_then_runs(tmp_path):
    warehouse = tmp_path / "quant.duckdb"
    first = holder(warehouse)
    said: list[str] = []
    waiting = threading.Event()
    got: list = []

    def second() -> None:
        def on_wait(message: str) -> None:
            said.append(message)
            waiting.set()

        with hold_run_lock(warehouse, "second", timeout=120, on_wait=on_wait) as acquired:
            got.append((acquired, read_holder(run_lock_path(warehouse))))

    thread = threading.Thread(target=second)
    thread.start()
    assert waiting.wait(60)
    assert not got  # still waiting while the first run holds the warehouse
    assert f"run run-1 (quant-pipeline run, PID {first.pid} on " in said[0]
    assert "waiting up to 120 s (QUANT_PIPELINE_RUN_LOCK_TIMEOUT)" in said[0]
    first.stdin.close()
    assert first.wait(timeout=60) == 0
    thread.join(timeout=60)
    acquired, now = got[0]
    assert acquired.waited_for.pid == first.pid and acquired.waited_for.run_id == "run-1"
    assert now.pid == os.getpid() and now.program == "second"


def test_the_wait_is_bounded_and_the_error_names_the_run_its_pid_and_the_setting(tmp_path):
    warehouse = tmp_path / "quant.duckdb"
    first = holder(warehouse, "run-7")
    try:
        with pytest.raises(WarehouseBusyError) as error:
            with hold_run_lock(warehouse, "second", timeout=0.2):
                pass
        message = str(error.value)
        assert f"in use by run run-7 (quant-pipeline run, PID {first.pid} on " in message
        assert "(QUANT_PIPELINE_RUN_LOCK_TIMEOUT=0.2)" in message
    finally:
        first.stdin.close()
        first.wait(timeout=60)


def test_a_holder_killed_with_sigkill_leaves_no_stale_lock(tmp_path):
    warehouse = tmp_path / "quant.duckdb"
    first = holder(warehouse)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    with hold_run_lock(warehouse, "after", timeout=0) as acquired:
        assert acquired.waited_for is None


def test_the_lock_is_reentrant_in_its_thread_records_the_run_id_and_is_cleared_on_release(
    tmp_path,
):
    warehouse = tmp_path / "quant.duckdb"
    with hold_run_lock(warehouse, "quant-pipeline run", timeout=0):
        assert read_holder(run_lock_path(warehouse)).run_id is None
        with hold_run_lock(warehouse, "inner", "abc", timeout=0) as inner:
            assert inner.waited == 0.0
            recorded = read_holder(run_lock_path(warehouse))
            assert (recorded.program, recorded.run_id) == ("quant-pipeline run", "abc")
        assert read_holder(run_lock_path(warehouse)).run_id == "abc"  # still held
    assert read_holder(run_lock_path(warehouse)) is None


def test_another_thread_of_the_same_process_waits_for_the_holding_thread(tmp_path):
    warehouse = tmp_path / "quant.duckdb"
    outcome: list[str] = []

    def other() -> None:
        try:
            with hold_run_lock(warehouse, "thread", timeout=0.2):
                outcome.append("got it")
        except WarehouseBusyError:
            outcome.append("busy")

    with hold_run_lock(warehouse, "main", timeout=0):
        thread = threading.Thread(target=other)
        thread.start()
        thread.join(timeout=60)
    assert outcome == ["busy"]


PROBE = """
import sys
from quant_pipeline.storage.run_lock import WarehouseBusyError, hold_run_lock
try:
    with hold_run_lock(sys.argv[1], "probe", timeout=0):
        print("free")
except WarehouseBusyError:
    print("busy")
"""


def _probe(warehouse) -> str:
    out = subprocess.run([sys.executable, "-c", PROBE, str(warehouse)], capture_output=True,
                         text=True, timeout=120, check=True)  # fmt: skip
    return out.stdout.strip()


def test_a_dagster_run_holds_the_lock_from_before_its_first_step_to_after_its_last(tmp_path):
    warehouse = tmp_path / "quant.duckdb"
    seen: list = []

    @dg.asset
    def first(context, warehouse: WarehouseResource) -> int:
        seen.append((context.run_id, read_holder(run_lock_path(warehouse.get().path))))
        return 1

    @dg.asset
    def second(context, first: int, warehouse: WarehouseResource):
        seen.append((context.run_id, read_holder(run_lock_path(warehouse.get().path))))
        seen.append(_probe(warehouse.get().path))

    resources = {"warehouse": WarehouseResource(path=str(warehouse))}
    assert dg.materialize([first, second], resources=resources).success
    (run_a, holder_a), (run_b, holder_b), probe = seen
    assert holder_a == holder_b  # one hold, taken once for the run
    assert holder_a.run_id == run_a == run_b and holder_a.pid == os.getpid()
    assert probe == "busy"  # another process cannot take the warehouse mid-run
    assert _probe(warehouse) == "free"  # released at the run's end


def test_a_dagster_run_that_cannot_get_the_warehouse_fails_naming_the_holder(tmp_path, monkeypatch):
    warehouse = tmp_path / "quant.duckdb"
    monkeypatch.setenv("QUANT_PIPELINE_RUN_LOCK_TIMEOUT", "0")
    ran: list[str] = []

    @dg.asset
    def anything(warehouse: WarehouseResource) -> None:
        ran.append("step")

    first = holder(warehouse, "run-ui")
    try:
        result = dg.materialize(
            [anything],
            resources={"warehouse": WarehouseResource(path=str(warehouse))},
            raise_on_error=False,
        )
    finally:
        first.stdin.close()
        first.wait(timeout=60)
    assert not result.success and ran == []
    [line] = failure_lines(result)
    assert line.startswith(
        f"run failed: WarehouseBusyError: warehouse {warehouse} is in use by run run-ui "
        f"(quant-pipeline run, PID {first.pid} on "
    )

"""Readers read the published copy of the last completed run and never block a writer
(issue 13, item 10): a reader holding the copy open for the whole time, a writer writing and
republishing meanwhile, zero failures, and every read sees one complete run."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import dagster as dg
import polars as pl

from quant_pipeline.app import cli
from quant_pipeline.defs.publishing import published_copy_sensor
from quant_pipeline.storage.warehouse import Warehouse


def run_rows(run: int) -> dict[str, pl.DataFrame]:
    """Two tables a 'run' writes: both carry the run number, so a mix would show."""
    return {
        "backtest.metrics": pl.DataFrame({"strategy": ["a", "b"], "run": [run, run]}),
        "backtest.comparison": pl.DataFrame({"strategy": ["a"], "run": [run]}),
    }


def write_run(wh: Warehouse, run: int) -> None:
    for table, frame in run_rows(run).items():
        wh.replace_table(table, frame)


def test_publish_copies_the_warehouse_and_readers_use_the_copy(tmp_path):
    wh = Warehouse(tmp_path / "quant.duckdb", lock_timeout=0)
    write_run(wh, 1)
    assert wh.for_readers() is wh  # nothing published yet: the live file
    target = wh.publish()
    assert target == tmp_path / "quant.published.duckdb"
    write_run(wh, 2)  # a run half-way: not published
    reader = wh.for_readers()
    assert reader.path == target
    assert reader.read_table("backtest.metrics")["run"].to_list() == [1, 1]
    assert not list(tmp_path.glob("*.tmp"))


def test_a_reader_holding_the_copy_open_never_blocks_the_writer(tmp_path):
    wh = Warehouse(tmp_path / "quant.duckdb", lock_timeout=0)  # any lock conflict fails at once
    write_run(wh, 1)
    wh.publish()
    code = f"""
        import sys, duckdb
        con = duckdb.connect({str(wh.published_path)!r}, read_only=True)
        print("open", flush=True)
        for line in sys.stdin:
            runs = {{r[0] for t in ("metrics", "comparison")
                    for r in con.sql(f"SELECT run FROM backtest.{{t}}").fetchall()}}
            print(sorted(runs), flush=True)
    """
    reader = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert reader.stdout.readline().strip() == "open"
        for run in (2, 3):
            write_run(wh, run)  # would raise WarehouseLockedError if the reader blocked it
            wh.publish()
            reader.stdin.write("read\n")
            reader.stdin.flush()
            assert reader.stdout.readline().strip() == "[1]"  # its own copy: one whole run
            fresh = wh.for_readers()
            assert set(fresh.read_table("backtest.metrics")["run"]) == {run}
            assert set(fresh.read_table("backtest.comparison")["run"]) == {run}
    finally:
        reader.stdin.close()
        reader.wait(timeout=30)


def test_cli_sql_reads_the_published_copy_unless_told_live(tmp_path, capsys):
    wh = Warehouse(tmp_path / "quant.duckdb")
    write_run(wh, 1)
    wh.publish()
    write_run(wh, 2)
    args = ["sql", "SELECT max(run) AS r FROM backtest.metrics", "--warehouse", str(wh.path)]
    assert cli.main([*args, "--csv"]) == 0
    assert capsys.readouterr().out == "r\n1\n"
    assert cli.main([*args, "--csv", "--live"]) == 0
    assert capsys.readouterr().out == "r\n2\n"


def test_the_sensor_publishes_after_a_successful_run(tmp_path, monkeypatch):
    path = tmp_path / "quant.duckdb"
    write_run(Warehouse(path), 7)
    monkeypatch.setenv("QUANT_PIPELINE_WAREHOUSE", str(path))

    @dg.asset
    def anything() -> None:
        return None

    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([anything], instance=instance)
        context = dg.build_run_status_sensor_context(
            sensor_name="published_copy_sensor",
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            dagster_event=result.get_run_success_event(),
        )
        published_copy_sensor(context)
    copy = Warehouse(tmp_path / "quant.published.duckdb")
    assert copy.read_table("backtest.metrics")["run"].to_list() == [7, 7]


def _sensor_context(instance, result):
    return dg.build_run_status_sensor_context(
        sensor_name="published_copy_sensor",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_success_event(),
    )


def test_the_sensor_does_not_publish_while_a_run_holds_the_warehouse(tmp_path, monkeypatch):
    from quant_pipeline.storage.run_lock import hold_run_lock

    path = tmp_path / "quant.duckdb"
    write_run(Warehouse(path), 7)
    monkeypatch.setenv("QUANT_PIPELINE_WAREHOUSE", str(path))

    @dg.asset
    def anything() -> None:
        return None

    code = f"""
        import sys
        from quant_pipeline.storage.run_lock import hold_run_lock
        with hold_run_lock({str(path)!r}, "quant-pipeline run", "cli-run"):
            print("held", flush=True)
            sys.stdin.read()
    """
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([anything], instance=instance)
        try:
            skipped = published_copy_sensor(_sensor_context(instance, result))
        finally:
            holder.stdin.close()
            holder.wait(timeout=60)
        assert "in use by run cli-run (quant-pipeline run" in skipped.skip_message
        assert not (tmp_path / "quant.published.duckdb").exists()
        with hold_run_lock(path, "test", timeout=0):  # released by the sensor too
            pass


def test_the_sensor_does_not_publish_after_a_later_run_failed(tmp_path, monkeypatch):
    path = tmp_path / "quant.duckdb"
    write_run(Warehouse(path), 7)
    monkeypatch.setenv("QUANT_PIPELINE_WAREHOUSE", str(path))

    @dg.asset
    def anything() -> None:
        return None

    @dg.asset
    def broken() -> None:
        raise ValueError("half-written")

    with dg.DagsterInstance.ephemeral() as instance:
        succeeded = dg.materialize([anything], instance=instance)
        failed = dg.materialize([broken], instance=instance, raise_on_error=False)
        skipped = published_copy_sensor(_sensor_context(instance, succeeded))
    assert f"run {failed.run_id} failed after it" in skipped.skip_message
    assert not (tmp_path / "quant.published.duckdb").exists()


def test_a_run_killed_half_way_leaves_readers_on_the_last_completed_run(tmp_path):
    wh = Warehouse(tmp_path / "quant.duckdb", lock_timeout=0)
    write_run(wh, 1)
    wh.publish()
    code = f"""
        import time, polars as pl
        from quant_pipeline.storage.warehouse import Warehouse
        wh = Warehouse({str(wh.path)!r})
        frame = pl.DataFrame({{"strategy": ["a", "b"], "run": [2, 2]}})
        wh.replace_table("backtest.metrics", frame)
        print("half", flush=True)
        time.sleep(60)
    """
    run = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                           text=True)  # fmt: skip
    assert run.stdout.readline().strip() == "half"
    run.kill()  # SIGKILL: no cleanup, no publish
    run.wait(timeout=30)
    live = {t: set(wh.read_table(t)["run"]) for t in ("backtest.metrics", "backtest.comparison")}
    assert live == {"backtest.metrics": {2}, "backtest.comparison": {1}}  # the live file mixes
    reader = wh.for_readers()
    for table in ("backtest.metrics", "backtest.comparison"):
        assert set(reader.read_table(table)["run"]) == {1}, table

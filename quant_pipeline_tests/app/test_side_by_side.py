"""Issue 13 "Done when", automated on a small demo market: two ``quant-pipeline run``s at once,
a loop of ``quant-pipeline sql`` and ``orders`` calls, and a read-only connection to the readers'
copy held open the whole time: zero failures, both runs complete, every read sees one whole run.
The two runs queue on the warehouse's run lock: their windows do not overlap, the second says
which run it waited for, the final warehouse equals one whole run, and both are runs of the
Dagster instance in DAGSTER_HOME (as the UI's Runs page and asset pages would show them).

Each command is its own process (as a person's shells would be); the warehouse and the Dagster
home are in tmp_path.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import dagster as dg
import polars as pl

from quant_pipeline.storage.warehouse import Warehouse

PROJECT = Path(__file__).resolve().parents[2]
HELD = re.compile(r"run (\S+) held the warehouse from (\S+) to (\S+) \(waited ([\d.]+) s")
WAITED = re.compile(r"waited ([\d.]+) s for run (\S+) \(quant-pipeline run, PID (\d+) ")


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(PROJECT),
        DAGSTER_HOME=str(tmp_path / "dagster_home"),  # missing: the first run creates it
        QUANT_PIPELINE_WAREHOUSE=str(tmp_path / "quant.duckdb"),
        QUANT_PIPELINE_REPORTS_DIR=str(tmp_path / "reports"),
        QUANT_PIPELINE_OUTBOX=str(tmp_path / "outbox"),
        QUANT_PIPELINE_PORTFOLIOS=str(tmp_path / "portfolios.yaml"),
        QUANT_PIPELINE_DEMO_TICKERS="40",
        QUANT_PIPELINE_DEMO_START="2019-01-01",
        QUANT_PIPELINE_DEMO_END="2021-06-30",
        QUANT_PIPELINE_STRATEGIES="magic_formula",
        QUANT_PIPELINE_LOCK_TIMEOUT="600",
    )
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "quant_pipeline.app.cli", *args],
        env=env,
        cwd=env["PYTHONPATH"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(proc: subprocess.Popen, what: str, with_err: bool = False):
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, f"{what} failed ({proc.returncode}):\n{err[-3000:]}"
    return (out, err) if with_err else out


def snapshot(path: Path) -> dict[str, pl.DataFrame]:
    """Every table but the ingest log (one row per fetch attempt), without timestamp columns
    (when a row was written), sorted: what one whole run leaves."""
    warehouse = Warehouse(path, read_only=True)
    tables = {}
    listing = warehouse.tables()
    for name in (listing["schema"] + "." + listing["table"]).to_list():
        if name == "raw.ingest_log":
            continue
        frame = warehouse.read_table(name)
        frame = frame.select([c for c, t in frame.schema.items() if not isinstance(t, pl.Datetime)])
        tables[name] = frame.sort(frame.columns) if frame.width else frame
    return tables


def hold_connection(path: Path) -> subprocess.Popen:
    """A notebook-like process holding a read-only connection to ``path`` until stdin closes,
    then printing the strategies it sees."""
    code = f"""
        import sys, duckdb
        con = duckdb.connect({str(path)!r}, read_only=True)
        print("open", flush=True)
        sys.stdin.read()
        print(con.sql("SELECT count(DISTINCT strategy) FROM backtest.comparison").fetchall())
    """
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    assert holder.stdout.readline().strip() == "open"
    return holder


def test_two_runs_sql_orders_and_a_held_connection_side_by_side(tmp_path):
    env = cli_env(tmp_path)
    published = tmp_path / "quant.published.duckdb"
    runs = [cli(env, "run"), cli(env, "run")]  # at once, on a warehouse that does not exist yet
    while not published.exists():  # the run that got the warehouse first publishes it
        assert all(r.poll() in (None, 0) for r in runs), [r.communicate() for r in runs]
        time.sleep(0.5)
    one_run = snapshot(published)  # what the first run left, while the second one writes
    holder = hold_connection(published)
    reads = 0
    query = "SELECT count(*) AS n, count(DISTINCT strategy) AS s FROM backtest.comparison"
    while any(r.poll() is None for r in runs) or reads < 3:
        out = finished(cli(env, "sql", query, "--csv"), "sql")
        # one whole run: magic_formula's row (the benchmark row is in the common-window table)
        assert out == "n,s\n1,1\n", out
        finished(cli(env, "orders", "--strategy", "magic_formula", "--capital", "10000",
                     "--as-of", "2021-06-30", "--no-packet"), "orders")  # fmt: skip
        reads += 1
        time.sleep(2)
    outputs = [finished(run, f"run {i + 1}", with_err=True) for i, run in enumerate(runs)]
    assert all("Strategy comparison" in out for out, _ in outputs)
    holder.stdin.close()
    # the held connection still sees one whole run: magic_formula's row (no benchmark row since
    # the same-window comparison; the benchmark is in backtest.comparison_common_window)
    assert holder.stdout.read().strip() == "[(1,)]"
    assert holder.wait(timeout=60) == 0

    # the two runs queued: one window after the other, the second naming the run it waited for
    held = sorted((HELD.search(err).groups() for _, err in outputs), key=lambda h: h[1])
    (first_id, _, first_end, _), (second_id, second_start, _, _) = held
    assert datetime.fromisoformat(first_end) <= datetime.fromisoformat(second_start)
    [waited] = [w for w in (WAITED.search(err) for _, err in outputs) if w is not None]
    assert waited.group(2) == first_id
    # the second run rewrote the first's warehouse: the final warehouse is one whole run
    after = snapshot(tmp_path / "quant.duckdb")
    assert set(after) == set(one_run)
    assert [t for t in one_run if not after[t].equals(one_run[t])] == []
    # both are runs of the Dagster instance in DAGSTER_HOME, with their materializations
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        records = instance.get_run_records()
        daily = instance.fetch_materializations(dg.AssetKey(["backtest", "daily"]), limit=10)
    assert [r.dagster_run.status for r in records] == [dg.DagsterRunStatus.SUCCESS] * 2
    windows = {r.dagster_run.run_id: (r.start_time, r.end_time) for r in records}
    assert windows[first_id][1] <= windows[second_id][0]  # as the instance recorded them
    assert {m.run_id for m in daily.records} == {first_id, second_id}

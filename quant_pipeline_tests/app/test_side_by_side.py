"""Issue 13 "Done when", automated on a small demo market: two ``quant-pipeline run``s at once,
a loop of ``quant-pipeline sql`` and ``orders`` calls, and a read-only connection to the readers'
copy held open the whole time: zero failures, both runs complete, every read sees one whole run.

Each command is its own process (as a person's shells would be); the warehouse is in tmp_path.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update(
        PYTHONPATH=str(PROJECT),
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


def finished(proc: subprocess.Popen, what: str) -> str:
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, f"{what} failed ({proc.returncode}):\n{err[-3000:]}"
    return out


def test_two_runs_sql_orders_and_a_held_connection_side_by_side(tmp_path):
    env = cli_env(tmp_path)
    finished(cli(env, "run"), "first run")  # creates and publishes the warehouse
    holder_code = f"""
        import sys, duckdb
        con = duckdb.connect({str(tmp_path / "quant.published.duckdb")!r}, read_only=True)
        print("open", flush=True)
        sys.stdin.read()
        print(con.sql("SELECT count(DISTINCT strategy) FROM backtest.comparison").fetchall())
    """
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(holder_code)], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    assert holder.stdout.readline().strip() == "open"
    runs = [cli(env, "run"), cli(env, "run")]
    reads = 0
    query = "SELECT count(*) AS n, count(DISTINCT strategy) AS s FROM backtest.comparison"
    while any(r.poll() is None for r in runs) or reads < 3:
        out = finished(cli(env, "sql", query, "--csv"), "sql")
        # one whole run: magic_formula's row (the benchmark row is in the common-window table)
        assert out == "n,s\n1,1\n", out
        finished(cli(env, "orders", "--strategy", "magic_formula", "--capital", "10000",
                     "--as-of", "2021-06-30", "--no-packet"), "orders")  # fmt: skip
        reads += 1
        time.sleep(0.5)
    for i, run in enumerate(runs):
        assert "Strategy comparison" in finished(run, f"run {i + 1}")
    holder.stdin.close()
    # the held connection still sees one whole run: magic_formula's row (no benchmark row since
    # the same-window comparison; the benchmark is in backtest.comparison_common_window)
    assert holder.stdout.read().strip() == "[(1,)]"
    assert holder.wait(timeout=60) == 0

"""The README's by-hand "side by side with the UI" steps, carried out without a person.

    python -m benchmarks.ui_side_by_side [--tickers 30] [--start 2019-01-01] [--end 2021-06-30]
                                         [--strategies magic_formula] [--workdir DIR] [--keep]

In a temporary folder (its own DAGSTER_HOME, warehouse, reports and outbox; nothing of the
project's ``dagster_home/`` or ``warehouse/`` is touched) on a small demo market:

1. ``quant-pipeline run`` once, so a published warehouse exists (a user's warehouse from before);
2. ``dagster dev -w workspace.yaml`` on a free port (webserver, daemon, code server), as
   ``make ui`` does, with DAGSTER_HOME and the settings in its environment;
3. a notebook-like process holding a read-only connection to the published copy, and a loop of
   ``quant-pipeline sql`` calls, both for the whole time;
4. ``full_pipeline_job`` launched through the GraphQL API (the UI's Launch button);
5. once that run has started, ``quant-pipeline run`` in a shell of its own, and, once that one
   waits, a second UI launch;
6. every run waited for; then the sensors' ticks (``published_copy_sensor``, ``new_prices_sensor``)
   read back through GraphQL.

It reports, per run, how it was launched, its status, when it was created, started and ended (from
the instance, the Runs page's source), how long it queued or waited for the warehouse, whether
any two runs' windows overlapped, the reads (count, failures, what they saw) and the sensor
ticks. Results go to stdout and ``benchmarks/results/ui_side_by_side-<timestamp>.json``. Not a
test: it needs free ports, minutes, and Dagster's daemon.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
RESULTS = PROJECT / "benchmarks" / "results"
READ = "SELECT count(*) AS n, count(DISTINCT strategy) AS s FROM backtest.comparison"
WAITED = re.compile(r"waited ([\d.]+) s for (run \S+ \(.+?\))")
HELD = re.compile(r"run (\S+) held the warehouse from (\S+) to (\S+) \(waited ([\d.]+) s")
TOOK = re.compile(r"took the warehouse run lock after ([\d.]+) s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scenario_env(work: Path, args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(PROJECT),
        DAGSTER_HOME=str(work / "dagster_home"),
        QUANT_PIPELINE_WAREHOUSE=str(work / "quant.duckdb"),
        QUANT_PIPELINE_REPORTS_DIR=str(work / "reports"),
        QUANT_PIPELINE_OUTBOX=str(work / "outbox"),
        QUANT_PIPELINE_INBOX=str(work / "inbox"),
        QUANT_PIPELINE_PORTFOLIOS=str(work / "portfolios.yaml"),
        QUANT_PIPELINE_DEMO_TICKERS=str(args.tickers),
        QUANT_PIPELINE_DEMO_START=args.start,
        QUANT_PIPELINE_DEMO_END=args.end,
        QUANT_PIPELINE_STRATEGIES=args.strategies,
    )
    return env


def cli(env: dict[str, str], *argv: str, log: Path | None = None) -> subprocess.Popen:
    err = log.open("w") if log else subprocess.PIPE
    return subprocess.Popen(
        [sys.executable, "-m", "quant_pipeline.app.cli", *argv],
        env=env,
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
    )


class GraphQL:
    """The webserver's GraphQL endpoint (what the UI itself calls)."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/graphql"

    def query(self, text: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": text, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            self.url, body, {"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.load(response)
        if answer.get("errors"):
            raise RuntimeError(f"GraphQL errors: {answer['errors']}")
        return answer["data"]

    def location(self, timeout: float = 300) -> tuple[str, str]:
        """(code location, repository) once the code server has loaded the definitions."""
        deadline = time.monotonic() + timeout
        text = "{ repositoriesOrError { __typename ... on RepositoryConnection { nodes { name "
        text += "location { name } } } } }"
        while time.monotonic() < deadline:
            try:
                nodes = self.query(text)["repositoriesOrError"].get("nodes") or []
                if nodes:
                    return nodes[0]["location"]["name"], nodes[0]["name"]
            except (OSError, RuntimeError):
                pass
            time.sleep(2)
        raise TimeoutError("the Dagster webserver did not load the code location")

    def launch(self, location: str, repository: str, job: str) -> str:
        """launchRun of ``job`` with its default config, as the Launchpad does; the run id."""
        text = """
        mutation Launch($params: ExecutionParams!) {
          launchRun(executionParams: $params) {
            __typename
            ... on LaunchRunSuccess { run { runId } }
            ... on PythonError { message }
            ... on RunConfigValidationInvalid { errors { message } }
          }
        }"""
        selector = {"repositoryLocationName": location, "repositoryName": repository,
                    "jobName": job}  # fmt: skip
        params = {"selector": selector, "runConfigData": {}, "mode": "default"}
        answer = self.query(text, {"params": params})["launchRun"]
        if answer["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"launchRun failed: {answer}")
        return answer["run"]["runId"]

    def ticks(self, location: str, repository: str, sensor: str) -> list[dict]:
        text = """
        query Ticks($selector: SensorSelector!) {
          sensorOrError(sensorSelector: $selector) {
            __typename
            ... on Sensor { sensorState { ticks(limit: 20) {
              status timestamp skipReason runIds error { message } } } }
          }
        }"""
        selector = {"repositoryLocationName": location, "repositoryName": repository,
                    "sensorName": sensor}  # fmt: skip
        answer = self.query(text, {"selector": selector})["sensorOrError"]
        return (answer.get("sensorState") or {}).get("ticks") or []


class Reads:
    """A loop of ``quant-pipeline sql`` calls in a thread, counting what each one saw."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env, self.seen, self.failures = env, {}, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            proc = cli(self.env, "sql", READ, "--csv")
            out, err = proc.communicate(timeout=600)
            if proc.returncode:
                self.failures.append(err.strip().splitlines()[-1:] or ["(no message)"])
            else:
                self.seen[out.strip()] = self.seen.get(out.strip(), 0) + 1
            self._stop.wait(1.0)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join(timeout=600)
        return {"reads": sum(self.seen.values()) + len(self.failures),
                "failures": self.failures, "seen": self.seen}  # fmt: skip


def hold_connection(path: Path) -> subprocess.Popen:
    code = f"""
        import sys, duckdb
        con = duckdb.connect({str(path)!r}, read_only=True)
        print("open", flush=True)
        sys.stdin.read()
        print(con.sql("SELECT count(*) FROM backtest.comparison").fetchall()[0][0], flush=True)
    """
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    assert proc.stdout.readline().strip() == "open"
    return proc


def cli_holds(logs: list[Path]) -> dict[str, tuple[float, float, float]]:
    """run id -> (held from, held to, lock wait) from the CLI runs' stderr."""
    holds = {}
    for log in logs:
        for found in HELD.finditer(log.read_text() if log.exists() else ""):
            run_id, start, end, waited = found.groups()
            holds[run_id] = (datetime.fromisoformat(start).timestamp(),
                             datetime.fromisoformat(end).timestamp(), float(waited))  # fmt: skip
    return holds


def instance_runs(home: Path, cli_logs: list[Path]) -> list[dict]:
    """Every run of the instance: id, launcher, status, created/started/ended, and when it held
    the warehouse (the CLI's own line; a UI run's "took the warehouse run lock" log entry)."""
    import dagster as dg

    holds = cli_holds(cli_logs)
    rows = []
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for record in reversed(instance.get_run_records()):
            run = record.dagster_run
            held_from, held_to, lock_wait = holds.get(run.run_id, (None, record.end_time, None))
            for entry in [] if run.run_id in holds else instance.all_logs(run.run_id):
                found = TOOK.search(entry.message or "")
                if found:
                    held_from, lock_wait = entry.timestamp, float(found.group(1))
            rows.append({
                "run_id": run.run_id,
                "job": run.job_name,
                "launched_by": "cli" if "quant_pipeline/launched_by" in run.tags else "ui",
                "status": run.status.value,
                "created": record.create_timestamp.timestamp(),
                "started": record.start_time,
                "ended": record.end_time,
                "lock_wait_s": lock_wait,
                "held_from": held_from,
                "held_to": held_to,
            })  # fmt: skip
    return rows


def wait_for(predicate, timeout: float, what: str, every: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(every)


def run_status(home: Path, run_id: str) -> str:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_by_id(run_id)
        return run.status.value if run else "MISSING"


FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


def scenario(work: Path, args: argparse.Namespace) -> dict:
    env = scenario_env(work, args)
    home = work / "dagster_home"
    started = time.monotonic()
    first = cli(env, "run", log=work / "cli-0.err")
    first.communicate(timeout=1800)
    result: dict = {"initial_cli_run_exit": first.returncode, "initial_s": 0.0}
    result["initial_s"] = round(time.monotonic() - started, 1)
    port = free_port()
    ui = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster")), "dev", "-w", "workspace.yaml",
         "-h", "127.0.0.1", "-p", str(port)],
        env=env, cwd=PROJECT, stdout=(work / "dagster-dev.log").open("w"),
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        result.update(_with_ui(env, home, work, GraphQL(port)))
    finally:
        ui.terminate()  # dagster dev stops its webserver, daemon and code server
        try:
            ui.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(ui.pid, 9)
    return result


def _with_ui(env: dict[str, str], home: Path, work: Path, api: GraphQL) -> dict:
    location, repository = api.location()
    holder = hold_connection(work / "quant.published.duckdb")
    reads = Reads(env)
    reads.start()
    ui_first = api.launch(location, repository, "full_pipeline_job")
    wait_for(lambda: run_status(home, ui_first) in {"STARTED", *FINISHED}, 600, "the UI run")
    shell = cli(env, "run", log=work / "cli-1.err")
    err_log = work / "cli-1.err"
    wait_for(lambda: "waiting for the warehouse" in err_log.read_text() or shell.poll() is not None,
             600, "the CLI run to wait")  # fmt: skip
    ui_second = api.launch(location, repository, "full_pipeline_job")
    shell_out, _ = shell.communicate(timeout=3600)
    for run_id in (ui_first, ui_second):
        wait_for(lambda r=run_id: run_status(home, r) in FINISHED, 3600, f"run {run_id}", 2.0)
    time.sleep(70)  # two sensor intervals: let published_copy_sensor and new_prices_sensor tick
    read_summary = reads.stop()
    holder.stdin.close()
    held_sees = holder.stdout.read().strip()
    holder.wait(timeout=60)
    cli_err = err_log.read_text()
    waited = WAITED.search(cli_err)
    return {
        "ui_runs": [ui_first, ui_second],
        "cli_exit": shell.returncode,
        "cli_printed_comparison": "Strategy comparison" in shell_out,
        "cli_waited": {"seconds": float(waited.group(1)), "for": waited.group(2)}
        if waited
        else None,
        "cli_wait_lines": [ln for ln in cli_err.splitlines() if "waiting for the warehouse" in ln],
        "runs": instance_runs(home, [work / "cli-0.err", err_log]),
        "reads": read_summary,
        "held_connection_rows": held_sees,
        "sensor_ticks": {
            name: api.ticks(location, repository, name)
            for name in ("published_copy_sensor", "new_prices_sensor")
        },
    }


def overlaps(runs: list[dict], start: str = "held_from", end: str = "held_to") -> list[tuple]:
    """Pairs of runs whose windows overlap (default: the windows they held the warehouse)."""
    spans = sorted((r[start], r[end], r["run_id"]) for r in runs if r[start] and r[end])
    return [(a[2], b[2]) for a, b in zip(spans, spans[1:], strict=False) if b[0] < a[1]]


def report(result: dict) -> str:
    lines = [f"initial quant-pipeline run: exit {result['initial_cli_run_exit']}, "
             f"{result['initial_s']} s"]  # fmt: skip
    t0 = min(r["created"] for r in result["runs"])
    lines.append("run                                   by   status   created  started  ended"
                 "   wall s  queued s  lock wait s  held from  held to")  # fmt: skip
    for r in result["runs"]:
        wall = (r["ended"] or 0) - (r["started"] or 0)
        queued = (r["started"] or 0) - r["created"]
        lines.append(
            f"{r['run_id']}  {r['launched_by']:<4} {r['status']:<8} {r['created'] - t0:7.1f}  "
            f"{(r['started'] or t0) - t0:7.1f}  {(r['ended'] or t0) - t0:6.1f}  {wall:7.1f}  "
            f"{queued:8.1f}  {r['lock_wait_s'] if r['lock_wait_s'] is not None else '-':>11}  "
            f"{(r['held_from'] or t0) - t0:9.1f}  {(r['held_to'] or t0) - t0:7.1f}"
        )
    lines.append(f"overlapping warehouse holds: {overlaps(result['runs']) or 'none'}")
    lines.append(
        "overlapping run windows (started..ended, a run waiting on the lock included): "
        f"{overlaps(result['runs'], 'started', 'ended') or 'none'}"
    )
    lines.append(f"CLI run: exit {result['cli_exit']}, waited {result['cli_waited']}")
    lines.extend(f"  {line}" for line in result["cli_wait_lines"])
    reads = result["reads"]
    lines.append(f"sql reads: {reads['reads']}, failures {len(reads['failures'])}, "
                 f"saw {reads['seen']}")  # fmt: skip
    lines.append(f"held connection saw {result['held_connection_rows']} comparison rows")
    for name, ticks in result["sensor_ticks"].items():
        lines.append(f"{name}: {len(ticks)} ticks")
        for tick in ticks[:8]:
            lines.append(
                f"  {tick['status']:<8} {(tick['skipReason'] or '')[:140]}"
                f"{' runs ' + ','.join(tick['runIds']) if tick['runIds'] else ''}"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tickers", type=int, default=30)
    parser.add_argument("--start", default="2019-01-01")
    parser.add_argument("--end", default="2021-06-30")
    parser.add_argument("--strategies", default="magic_formula")
    parser.add_argument("--workdir", type=Path, help="keep everything here (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="ui_side_by_side_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        result = scenario(work, args)
    finally:
        if not (args.keep or args.workdir):
            shutil.rmtree(work, ignore_errors=True)
    print(report(result))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"ui_side_by_side-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps({"settings": vars(args) | {"workdir": str(work)}, **result},
                              indent=2, default=str))  # fmt: skip
    print(f"results: {out}")
    ok = (
        result["cli_exit"] == 0
        and all(r["status"] == "SUCCESS" for r in result["runs"])
        and not result["reads"]["failures"]
        and not overlaps(result["runs"])
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

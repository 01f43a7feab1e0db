"""A price-only folder of one file per ticker, with the faults vendors ship, and its end-to-end run.

    python -m benchmarks.ticker_folder generate DIR [--tickers 7000] [--years 20] [--seed 1]
    python -m benchmarks.ticker_folder measure DIR [--warehouse W] [--json out.json]

``generate`` writes ``DIR/prices/<ticker>.us.txt`` files in the common free layout
(``Date,Open,High,Low,Close,Volume,OpenInt``), like the 7,162-ticker US history of 1998-2017:
each ticker lives a random span of the ``--years`` years (listings and delistings), so 7,000
tickers give about 14 M rows. Faults, all deterministic for a seed:

- duplicate pairs: for 0.5% of the tickers a second file ``<t>_x`` next to ``<t>-x`` (one
  ticker by the naming rule) that repeats it with a few days' closes changed (conflicting) and
  the rest identical;
- 0.3% empty files and 0.1% header-only files;
- in 2% of the files one bad row each: a repeated header, an impossible date, a non-number close,
  high < low or a non-positive close (the last two are refused by curation).

``measure`` runs ``quant-pipeline run --source files`` on the folder in a child process and
reports wall time, CPU time and the child's peak resident memory (``ru_maxrss``), plus the rows
set aside and the strategies skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

HEADER = "Date,Open,High,Low,Close,Volume,OpenInt"
DUPLICATE_SHARE = 0.005
EMPTY_SHARE = 0.003
HEADER_ONLY_SHARE = 0.001
BAD_ROW_SHARE = 0.02
BAD_ROWS = ("header", "date", "number", "high_low", "non_positive")


def _ticker(i: int) -> str:
    letters = ""
    n = i
    for _ in range(4):
        letters = chr(ord("a") + n % 26) + letters
        n //= 26
    return letters


def _days(years: int, end: date) -> np.ndarray:
    start = np.datetime64(date(end.year - years, end.month, end.day))
    calendar = np.arange(start, np.datetime64(end) + 1, dtype="datetime64[D]")
    return calendar[np.is_busday(calendar)]


def _series(rng: np.random.Generator, market: np.ndarray, beta: float) -> pl.DataFrame:
    """Bars of one ticker: beta x the common market return plus its own noise."""
    n = len(market)
    close = 20.0 * np.exp(np.cumsum(beta * market + rng.normal(0.0, 0.018, n)))
    spread = np.abs(rng.normal(0, 0.01, n)) * close
    return pl.DataFrame(
        {
            "Open": np.round(close * (1 + rng.normal(0, 0.005, n)), 4),
            "High": np.round(close + spread, 4),
            "Low": np.round(close - spread, 4),
            "Close": np.round(close, 4),
            "Volume": rng.integers(1_000, 2_000_000, n),
            "OpenInt": np.zeros(n, dtype=np.int64),
        }
    )


# A Saturday before every history: a bad row on its own day, not a duplicate of a good one.
BAD_DAY = "1997-01-04"


def _bad_line(kind: str) -> str:
    return {
        "header": HEADER,
        "date": "2011-13-45,1,2,0.5,1.5,100,0",
        "number": f"{BAD_DAY},1,2,0.5,n/a,100,0",
        "high_low": f"{BAD_DAY},1,0.5,2,1.5,100,0",
        "non_positive": f"{BAD_DAY},1,2,0.5,0,100,0",
    }[kind]


def generate(folder: Path, tickers: int, years: int, seed: int, end: date) -> dict:
    """Write the folder; return counts of files, rows and planted faults."""
    rng = np.random.default_rng(seed)
    days = _days(years, end)
    market = rng.normal(0.0003, 0.011, len(days))  # one market: stocks move together
    out = folder / "prices"
    out.mkdir(parents=True, exist_ok=True)
    counts = {"files": 0, "rows": 0, "duplicate_pairs": 0, "empty": 0, "header_only": 0}
    counts.update({f"bad_{k}": 0 for k in BAD_ROWS})
    for i in range(tickers):
        name = _ticker(i)
        roll = rng.random()
        if roll < EMPTY_SHARE:
            (out / f"{name}.us.txt").write_text("")
            counts["empty"] += 1
            counts["files"] += 1
            continue
        if roll < EMPTY_SHARE + HEADER_ONLY_SHARE:
            (out / f"{name}.us.txt").write_text(HEADER + "\n")
            counts["header_only"] += 1
            counts["files"] += 1
            continue
        first, last = np.sort(rng.integers(0, len(days), 2))
        if roll > 0.8:  # a fifth of the universe trades to the end from its listing
            last = len(days) - 1
        span = days[first : last + 1]
        if len(span) < 30:
            first, span = len(days) - 260, days[-260:]
        beta = float(rng.uniform(0.5, 1.5))
        frame = (
            _series(rng, market[first : first + len(span)], beta)
            .with_columns(pl.Series("Date", span.astype("datetime64[D]").astype(str)))
            .select("Date", "Open", "High", "Low", "Close", "Volume", "OpenInt")
        )
        duplicate = rng.random() < DUPLICATE_SHARE
        file_name = f"{name}-x.us.txt" if duplicate else f"{name}.us.txt"
        text = frame.write_csv(include_header=True)
        if rng.random() < BAD_ROW_SHARE:
            kind = BAD_ROWS[int(rng.integers(0, len(BAD_ROWS)))]
            lines = text.splitlines()
            at = int(rng.integers(2, len(lines)))
            lines.insert(at, _bad_line(kind))
            text = "\n".join(lines) + "\n"
            counts[f"bad_{kind}"] += 1
        (out / file_name).write_text(text)
        counts["files"] += 1
        counts["rows"] += frame.height
        if duplicate:
            changed = frame.with_columns(
                pl.when(pl.int_range(pl.len()) % 97 == 5)
                .then(pl.col("Close") * 1.01)
                .otherwise(pl.col("Close"))
                .round(4)
                .alias("Close")
            )
            (out / f"{name}_x.us.txt").write_text(changed.write_csv(include_header=True))
            counts["duplicate_pairs"] += 1
            counts["files"] += 1
    return counts


def _rss_gib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return 0.0


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of the process so far (all threads), 0 once it has gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


_STEP_START = re.compile(r"^(\S+ \S+) \+0000 - dagster - DEBUG - .* - (\S+) - STEP_START - ")
_STEP_DONE = re.compile(
    r" - (\S+) - STEP_SUCCESS - Finished execution of step .* in ([\d.]+)(ms|s|m)"
)
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0}


def step_peaks(samples: list[tuple[datetime, float, float]], log: str) -> list[dict]:
    """Peak RSS, duration and CPU per Dagster step: each sample belongs to the last step started.

    A sample is (time, RSS GiB, CPU seconds so far); a step's CPU is the growth of the CPU
    counter from the last sample before it to its own last sample. ``seconds`` is Dagster's own
    step duration (STEP_SUCCESS), else the time to the next step's start. Two pseudo-steps
    hold the rest: ``(before the first step)`` (imports, definitions, the run's start) and
    ``(after the last step)`` (the last step's samples after it finished: publishing the
    readers' copy, the comparison table).
    """
    starts = []
    took: dict[str, float] = {}
    for line in log.splitlines():
        match = _STEP_START.match(line)
        if match:
            when = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            starts.append((when, match.group(2)))
        done = _STEP_DONE.search(line)
        if done:
            took[done.group(1)] = float(done.group(2)) * _UNIT[done.group(3)]
    out: dict[str, dict] = {}

    def window(name: str, since: datetime | None, until: datetime | None, seconds) -> None:
        inside = [
            (r, c)
            for t, r, c in samples
            if (since is None or t >= since) and (until is None or t < until)
        ]
        before = [c for t, _, c in samples if since is not None and t < since]
        cpu = max((c for _, c in inside), default=0.0) - max(before, default=0.0)
        out[name] = {
            "step": name,
            "seconds": seconds,
            "cpu_seconds": round(max(cpu, 0.0), 1) if inside else None,
            "peak_rss_gib": round(max((r for r, _ in inside), default=0.0), 2),
        }

    if starts:
        window("(before the first step)", None, starts[0][0], None)
    for i, (when, step) in enumerate(starts):
        until = starts[i + 1][0] if i + 1 < len(starts) else None
        gap = (until - when).total_seconds() if until else None
        window(step, when, until, round(took[step], 1) if step in took else gap)
    if starts and starts[-1][1] in took:
        last_when, last = starts[-1]
        finished = last_when + timedelta(seconds=took[last] + 1)  # log times are whole seconds
        window("(after the last step)", finished, None, None)
        window(last, last_when, finished, round(took[last], 1))
    return sorted(out.values(), key=lambda r: -r["peak_rss_gib"])


def measure(folder: Path, warehouse: Path, reports: Path) -> dict:
    """Run the whole chain on ``folder`` in a child process: wall, CPU, peak RSS, per step."""
    env = {
        **os.environ,
        "QUANT_PIPELINE_SOURCE": "files",
        "QUANT_PIPELINE_DATA_DIR": str(folder),
        "QUANT_PIPELINE_WAREHOUSE": str(warehouse),
        "QUANT_PIPELINE_REPORTS_DIR": str(reports),
        # a Dagster home of its own beside the warehouse: the run history stays out of the
        # project's dagster_home/ (quant-pipeline run records its runs in DAGSTER_HOME)
        "DAGSTER_HOME": str(warehouse.parent / "dagster_home"),
    }
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    command = [sys.executable, "-m", "quant_pipeline.app.cli", "run", "--log-level", "DEBUG"]
    with tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        samples: list[tuple[datetime, float, float]] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.2):
                samples.append((datetime.now(UTC), _rss_gib(child.pid), _cpu_seconds(child.pid)))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        stdout, _ = child.communicate()
        done.set()
        sampler.join()
        err.seek(0)
        stderr = err.read()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "exit_status": child.returncode,
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(
            (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1
        ),
        "peak_rss_gib": round(after.ru_maxrss / 1024**2, 2),
        "steps": step_peaks(samples, stderr),
        "stdout": stdout,
        "stderr_tail": stderr[-3000:],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.ticker_folder", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate")
    gen.add_argument("folder", type=Path)
    gen.add_argument("--tickers", type=int, default=7000)
    gen.add_argument("--years", type=int, default=20)
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--end", type=date.fromisoformat, default=date(2017, 11, 10))
    run = sub.add_parser("measure")
    run.add_argument("folder", type=Path)
    run.add_argument("--warehouse", type=Path)
    run.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.command == "generate":
        started = time.perf_counter()
        counts = generate(args.folder, args.tickers, args.years, args.seed, args.end)
        counts["seconds"] = round(time.perf_counter() - started, 1)
        print(json.dumps(counts, indent=2))
        return 0
    work = Path(tempfile.mkdtemp(prefix="ticker-folder-"))
    result = measure(args.folder, args.warehouse or work / "quant.duckdb", work / "reports")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(result["stdout"])
    print({k: v for k, v in result.items() if k not in ("stdout", "stderr_tail", "steps")})
    for row in result["steps"][:16]:
        print(row)
    if result["exit_status"]:
        print(result["stderr_tail"], file=sys.stderr)
    return result["exit_status"]


if __name__ == "__main__":
    sys.exit(main())

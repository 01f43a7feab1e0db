"""The process pool a sweep's variants run on: same results as in-process, in order."""

from __future__ import annotations

import os

import pytest

from quant_pipeline.app.parallel import process_map
from quant_pipeline.core.backtest.share_simulation import TradingModel
from quant_pipeline.core.research.sweeps import parse_sweep, run_sweep, serial_map
from quant_pipeline_tests.core.research.test_sweeps import BASE, D1, D2, _prices, _values


def _offset_and_pid(shared: dict, job: int) -> tuple[int, int]:
    return shared["offset"] + job, os.getpid()


def test_jobs_run_in_worker_processes_with_the_shared_context_and_come_back_in_order():
    out = process_map(2)(_offset_and_pid, {"offset": 100}, list(range(8)))
    assert [value for value, _ in out] == list(range(100, 108))
    assert os.getpid() not in {pid for _, pid in out}


def test_one_worker_runs_in_this_process_and_zero_workers_is_refused():
    out = process_map(1)(_offset_and_pid, {"offset": 1}, [1, 2])
    assert out == [(2, os.getpid()), (3, os.getpid())]
    with pytest.raises(ValueError, match="workers must be >= 1"):
        process_map(0)


def test_a_sweep_on_two_processes_writes_the_same_table_as_in_process():
    sweep = parse_sweep(
        {"strategy": "tiny", "grid": {"portfolio.top_n": [1, 2, 3], "rebalance": ["monthly"]}},
        BASE,
    )
    args = (sweep, _values(), {"monthly": [D1, D2]}, _prices(), None, lambda s: TradingModel())
    alone = run_sweep(*args, n_splits=2, map_runs=serial_map)
    spread = run_sweep(*args, n_splits=2, map_runs=process_map(2))
    assert spread.table.equals(alone.table) and spread.daily.equals(alone.daily)
    assert alone.table.height == 3


def test_a_script_without_a_main_guard_is_not_run_again_by_the_workers(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "unguarded.py"
    script.write_text(
        "print('body', flush=True)\n"
        "from quant_pipeline.app.parallel import process_map\n"
        "from quant_pipeline_tests.app.test_parallel import _offset_and_pid\n"
        "print([v for v, _ in process_map(2)(_offset_and_pid, {'offset': 10}, [1, 2, 3])])\n"
    )
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.splitlines() == ["body", "[11, 12, 13]"]

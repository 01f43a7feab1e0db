"""A writer waits for a busy warehouse, bounded, saying what it waits for (issue 13, item 10)."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time

import polars as pl
import pytest

from quant_pipeline.storage.warehouse import Warehouse, WarehouseError, WarehouseLockedError


def hold(path, seconds: float) -> subprocess.Popen:
    """A process holding the DuckDB write lock on ``path`` for ``seconds``."""
    code = f"""
        import time, duckdb
        con = duckdb.connect({str(path)!r})
        print("locked", flush=True)
        time.sleep({seconds})
        con.close()
    """
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    assert proc.stdout.readline().strip() == "locked"
    return proc


@pytest.fixture
def frame():
    return pl.DataFrame({"strategy": ["a"], "value": [1.0]})


def test_a_writer_waits_for_the_holder_and_then_writes(tmp_path, frame, caplog):
    wh = Warehouse(tmp_path / "quant.duckdb", lock_timeout=30)
    wh.replace_table("backtest.metrics", frame)
    holder = hold(wh.path, 1.5)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="quant_pipeline.storage.warehouse"):
        wh.replace_table("backtest.metrics", frame.with_columns(value=pl.lit(2.0)))
    assert time.monotonic() - started >= 1.0
    holder.wait(timeout=30)
    assert wh.read_table("backtest.metrics")["value"].to_list() == [2.0]
    assert "waiting up to 30 s" in caplog.text
    assert f"(PID {holder.pid})" in caplog.text


def test_the_wait_is_bounded_and_the_error_names_the_holder(tmp_path, frame):
    wh = Warehouse(tmp_path / "quant.duckdb", lock_timeout=0.5)
    wh.replace_table("backtest.metrics", frame)
    holder = hold(wh.path, 5)
    try:
        started = time.monotonic()
        with pytest.raises(WarehouseLockedError, match=rf"\(PID {holder.pid}\); waited 0\.[5-9]"):
            wh.replace_table("backtest.metrics", frame)
        assert time.monotonic() - started < 3
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_the_timeout_comes_from_quant_pipeline_lock_timeout(tmp_path, monkeypatch):
    monkeypatch.setenv("QUANT_PIPELINE_LOCK_TIMEOUT", "12.5")
    assert Warehouse(tmp_path / "w.duckdb").lock_timeout == 12.5
    monkeypatch.setenv("QUANT_PIPELINE_LOCK_TIMEOUT", "soon")
    with pytest.raises(WarehouseError, match="QUANT_PIPELINE_LOCK_TIMEOUT='soon' is not a number"):
        Warehouse(tmp_path / "w.duckdb")

"""The read-only warehouse of checks and read-only steps: reads work, every write raises."""

import subprocess
import sys
import textwrap
from datetime import date

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quant_pipeline.core.data.schema import RAW_INGEST_LOG
from quant_pipeline.storage.warehouse import (
    Warehouse,
    WarehouseLockedError,
    WarehouseReadOnlyError,
)
from quant_pipeline_tests.storage.test_warehouse import prices

WEIGHTS = pl.DataFrame(
    {"strategy": ["s", "s"], "rebalance_date": [date(2024, 1, 2)] * 2, "weight": [0.4, 0.6]}
)


@pytest.fixture
def path(tmp_path):
    writer = Warehouse(tmp_path / "quant.duckdb")
    writer.write_raw("prices", prices([10.0, 11.0]))
    writer.replace_table("portfolio.target_weights", WEIGHTS)
    return writer.path


WRITES = {
    "ensure_schemas": lambda wh: wh.ensure_schemas(),
    "write_raw": lambda wh: wh.write_raw("prices", prices([12.0])),
    "replace_table": lambda wh: wh.replace_table("portfolio.target_weights", WEIGHTS.head(1)),
    "replace_partition": lambda wh: wh.replace_partition(
        "portfolio.target_weights", WEIGHTS.head(1), "strategy", ["s"]
    ),
    "log_ingest": lambda wh: wh.log_ingest(pl.DataFrame(schema=RAW_INGEST_LOG)),
    "query_read_write": lambda wh: wh.query(
        "DELETE FROM portfolio.target_weights", read_only=False
    ),
}


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_every_write_through_a_read_only_warehouse_raises_and_changes_nothing(path, write):
    read_only = Warehouse(path, read_only=True)
    with pytest.raises(WarehouseReadOnlyError, match="opened read-only"):
        write(read_only)
    assert_frame_equal(Warehouse(path).read_table("portfolio.target_weights"), WEIGHTS)
    assert Warehouse(path).row_count("raw.prices") == 2


def test_the_error_names_the_file_and_the_table_it_refused(path):
    with pytest.raises(WarehouseReadOnlyError) as refused:
        Warehouse(path, read_only=True).replace_table("backtest.metrics", WEIGHTS)
    assert str(path) in str(refused.value)
    assert "cannot write backtest.metrics" in str(refused.value)


def test_a_read_only_warehouse_reads_like_the_writer(path):
    read_only = Warehouse(path, read_only=True)
    assert_frame_equal(read_only.read_table("portfolio.target_weights"), WEIGHTS)
    assert read_only.read_raw("prices")["close"].to_list() == [10.0, 11.0]
    assert read_only.has_table("raw.prices")
    assert read_only.query("SELECT count(*) AS n FROM raw.prices")["n"][0] == 2


def test_its_connections_are_duckdb_read_only_connections(path):
    with Warehouse(path, read_only=True).connect(read_only=True) as con:
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("DELETE FROM portfolio.target_weights")


def test_it_reads_while_another_process_holds_a_read_only_connection(path):
    # DuckDB lets several processes read a file at once; a writer would be locked out. A check
    # that used the write path (ensure_schemas) would fail here.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, duckdb
                con = duckdb.connect({str(path)!r}, read_only=True)
                print("reading", flush=True)
                sys.stdin.read()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "reading"
        assert Warehouse(path, read_only=True).row_count("portfolio.target_weights") == 2
        with pytest.raises(WarehouseLockedError):
            Warehouse(path, lock_timeout=0).ensure_schemas()  # fail at once instead of waiting
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)

"""``quant-pipeline sql`` cannot write anything (issue 13, item 8).

Each statement a user could try to write with is run through the CLI against a small warehouse
in ``tmp_path``; every one must fail with DuckDB's own refusal on stderr, exit 1, and leave the
warehouse and the file system as they were.
"""

from __future__ import annotations

import os

import polars as pl
import pytest

from quant_pipeline.app import cli
from quant_pipeline.storage.warehouse import Warehouse


@pytest.fixture
def warehouse(tmp_path):
    wh = Warehouse(tmp_path / "quant.duckdb")
    metrics = pl.DataFrame({"strategy": ["a", "b"], "value": [1.0, 2.0]})
    wh.replace_table("backtest.metrics", metrics)
    return wh


def run_sql(warehouse: Warehouse, query: str, capsys) -> tuple[int, str, str]:
    code = cli.main(["sql", query, "--warehouse", str(warehouse.path)])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_select_still_works(warehouse, capsys):
    code, out, _ = run_sql(warehouse, "SELECT sum(value) AS total FROM backtest.metrics", capsys)
    assert code == 0 and "3.0" in out


@pytest.mark.parametrize(
    ("statement", "refusal"),
    [
        ("DELETE FROM backtest.metrics", "read-only"),
        ("CREATE TABLE backtest.x AS SELECT 1", "read-only"),
        ("ATTACH '{tmp}/other.duckdb' AS o (READ_WRITE)", "file system operations are disabled"),
        ("COPY backtest.metrics TO '{tmp}/out.csv'", "file system operations are disabled"),
        ("COPY (SELECT 1) TO '/dev/stdout'", "file system operations are disabled"),
        ("EXPORT DATABASE '{tmp}/export'", "file system operations are disabled"),
        ("INSTALL httpfs", "file system operations are disabled"),
        ("LOAD httpfs", "extensions is disabled"),
        ("SET enable_external_access = true", "configuration has been locked"),
        ("RESET enable_external_access", "configuration has been locked"),
        ("SET lock_configuration = false", "configuration has been locked"),
        ("SET allowed_directories = ['{tmp}']", "configuration has been locked"),
        ("PRAGMA enable_profiling", "configuration has been locked"),
        ("SET profiling_output = '{tmp}/profile.txt'", "configuration has been locked"),
        ("CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'k', SECRET 'v')", "disabled"),
        ("SELECT * FROM read_csv('/etc/passwd', sep = ':')", "file system operations are disabled"),
        ("SELECT 1; DELETE FROM backtest.metrics", "read-only"),
    ],
)
def test_a_statement_that_would_write_is_refused(warehouse, capsys, statement, refusal):
    tmp = warehouse.path.parent
    before = sorted(os.listdir(tmp))
    code, _, err = run_sql(warehouse, statement.format(tmp=tmp), capsys)
    assert code == 1
    assert refusal in err
    assert sorted(os.listdir(tmp)) == before
    assert warehouse.row_count("backtest.metrics") == 2


def test_a_hard_link_to_the_warehouse_cannot_be_attached_to_delete_rows(warehouse, capsys):
    link = warehouse.path.parent / "link.duckdb"
    os.link(warehouse.path, link)
    query = f"ATTACH '{link}' AS l (READ_WRITE); DELETE FROM l.backtest.metrics"
    code, _, err = run_sql(warehouse, query, capsys)
    assert code == 1
    assert "file system operations are disabled" in err
    assert warehouse.row_count("backtest.metrics") == 2
    assert Warehouse(link).row_count("backtest.metrics") == 2


def test_the_pipeline_itself_still_writes(warehouse):
    warehouse.replace_table("backtest.metrics", pl.DataFrame({"strategy": ["c"], "value": [3.0]}))
    assert warehouse.row_count("backtest.metrics") == 1

"""Reads inside ``reusing_reads`` (a run) share one held read-only connection between writes."""

import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import quant_pipeline.storage.warehouse as warehouse_module
from quant_pipeline.defs.resources import WarehouseResource
from quant_pipeline.storage.warehouse import Warehouse, WarehouseError, reusing_reads

FRAME = pl.DataFrame(
    {
        "strategy": ["a", "b", "c"],
        "weight": [0.2, 0.3, 0.5],
        "at": [datetime(2024, 1, 2, 15, 30, tzinfo=UTC)] * 3,
    }
)


@pytest.fixture
def path(tmp_path):
    writer = Warehouse(tmp_path / "quant.duckdb")
    writer.replace_table("portfolio.target_weights", FRAME)
    return writer.path


def _recorded(monkeypatch, name: str, pick, static: bool = False) -> list:
    """``pick(*args)`` of each call of ``Warehouse.<name>`` from now on (the method still
    does its work)."""
    seen: list = []
    real = getattr(Warehouse, name)

    def recording(*args):
        seen.append(pick(*args))
        return real(*args)

    monkeypatch.setattr(Warehouse, name, staticmethod(recording) if static else recording)
    return seen


@pytest.fixture
def opens(monkeypatch):
    """The database opens of this process, as their read_only flags."""
    return _recorded(monkeypatch, "_open", lambda self, read_only: read_only)


def _reads(wh: Warehouse) -> list[object]:
    return [
        wh.read_table("portfolio.target_weights"),
        wh.has_table("portfolio.target_weights"),
        wh.row_count("portfolio.target_weights"),
        wh.read_table("portfolio.target_weights", columns=["weight"], filters={"strategy": "b"}),
    ]


def test_reads_in_the_block_open_the_database_once_and_read_what_plain_reads_read(path, opens):
    plain = _reads(Warehouse(path, read_only=True))
    assert opens == [True] * 4
    opens.clear()
    with reusing_reads(path):
        held = _reads(Warehouse(path, read_only=True)) + _reads(Warehouse(path))
    assert opens == [True]
    for a, b in zip(plain + plain, held, strict=True):
        if isinstance(a, pl.DataFrame):
            assert_frame_equal(a, b)
        else:
            assert a == b
    assert held[0]["at"].dtype == pl.Datetime("us", "UTC")
    assert held[0]["at"][0] == datetime(2024, 1, 2, 15, 30, tzinfo=UTC)
    assert warehouse_module._HELD == {}


def test_a_write_closes_the_held_connection_and_the_next_read_sees_it(path, opens):
    wh = Warehouse(path)
    with reusing_reads(path):
        assert wh.row_count("portfolio.target_weights") == 3
        wh.replace_table("portfolio.target_weights", FRAME.head(1))
        assert wh.row_count("portfolio.target_weights") == 1
        assert_frame_equal(wh.read_table("portfolio.target_weights"), FRAME.head(1))
    # read, write (read-write), read again (a new held connection)
    assert opens == [True, False, True]


def test_a_held_cursor_is_sandboxed_like_every_read_only_connection(path, tmp_path):
    outside = tmp_path / "outside.csv"
    outside.write_text("a\n1\n")
    wh = Warehouse(path, read_only=True)
    with reusing_reads(path):
        wh.row_count("portfolio.target_weights")  # the held connection is open now
        with pytest.raises(WarehouseError, match="query failed"):
            wh.query(f"SELECT * FROM read_csv('{outside}')")
        with pytest.raises(WarehouseError, match="query failed"):
            wh.query("SET enable_external_access = true")
        with pytest.raises(WarehouseError, match="query failed"):
            wh.query("DELETE FROM portfolio.target_weights")
        assert wh.query("SELECT current_setting('TimeZone') AS tz")["tz"][0] in {"UTC", "Etc/UTC"}
    assert Warehouse(path).row_count("portfolio.target_weights") == 3


def test_the_held_connection_is_closed_once_duckdb_holds_more_than_the_bound(
    path, opens, monkeypatch
):
    monkeypatch.setattr(warehouse_module, "HELD_READS_MAX_BYTES", -1)
    with reusing_reads(path):
        _reads(Warehouse(path, read_only=True))
    assert opens == [True] * 4  # closed after every read: nothing is kept cached


def test_reads_inside_a_batch_block_use_the_same_held_connection(path, opens):
    wh = Warehouse(path, read_only=True)
    with reusing_reads(path):
        with wh.read_batches("portfolio.target_weights", key="strategy", max_rows=1) as frames:
            batches = [(f, wh.row_count("portfolio.target_weights")) for f in frames]
    assert [f["strategy"].to_list() for f, _ in batches] == [["a"], ["b"], ["c"]]
    assert [n for _, n in batches] == [3, 3, 3]
    assert opens == [True]


def test_another_process_opens_read_only_beside_the_held_connection_and_writes_after(path):
    script = textwrap.dedent(
        f"""
        import duckdb
        con = duckdb.connect({str(path)!r}, read_only={{}})
        print(con.sql("SELECT count(*) FROM portfolio.target_weights").fetchall()[0][0])
        """
    )

    def other(read_only: bool) -> subprocess.CompletedProcess:
        code = script.format(read_only)
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    wh = Warehouse(path, read_only=True)
    with reusing_reads(path):
        wh.row_count("portfolio.target_weights")
        beside = other(True)
        blocked = other(False)
    after = other(False)
    assert (beside.returncode, beside.stdout.strip()) == (0, "3")
    assert blocked.returncode != 0 and "lock" in blocked.stderr.lower()
    assert (after.returncode, after.stdout.strip()) == (0, "3")


def test_a_run_reads_through_one_held_connection_between_its_writes(path, opens):
    @dg.asset
    def reads_five_times(warehouse: WarehouseResource) -> None:
        wh = warehouse.read_only()
        for _ in range(5):
            wh.row_count("portfolio.target_weights")
        warehouse.get().replace_table("portfolio.target_weights", FRAME.head(2))
        wh.row_count("portfolio.target_weights")

    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [reads_five_times],
            resources={"warehouse": WarehouseResource(path=str(path))},
            instance=instance,
        )
    assert result.success
    # five reads on one held connection; get() creates the schemas (read-write), the write
    # (read-write), one read on a new held connection
    assert opens == [True, False, False, True]
    assert warehouse_module._HELD == {}
    assert Warehouse(path).row_count("portfolio.target_weights") == 2


@pytest.fixture
def hashes(monkeypatch):
    """The tables whose content this process hashed (each DuckDB pass over one)."""
    return _recorded(monkeypatch, "_table_exists", lambda con, table: table, static=True)


def test_a_table_is_hashed_once_in_the_block_until_something_writes_the_file(path, hashes):
    table = "portfolio.target_weights"
    wh = Warehouse(path)
    plain = wh.content_fingerprints([table], ("at",))
    hashes.clear()
    with reusing_reads(path):
        first = wh.content_fingerprints([table], ("at",))
        again = wh.content_fingerprints([table], ("at",))
        other_columns = wh.content_fingerprints([table])
        assert hashes == [table, table]  # the same columns again: no second pass
        assert first == again == plain and other_columns != first
        again[table]["rows"] = -1  # a caller's copy, not the cache
        assert wh.content_fingerprints([table], ("at",)) == plain
        wh.replace_table(table, FRAME.head(1))  # this process writes it: forgotten
        after = wh.content_fingerprints([table], ("at",))
        assert after[table]["rows"] == 1 and after[table]["hash"] != plain[table]["hash"]
        # a write to another table keeps what is known of this one; the other is hashed anew
        hashes.clear()
        wh.replace_table("portfolio.other", FRAME)
        wh.content_fingerprints([table, "portfolio.other"], ("at",))
        assert hashes == ["portfolio.other"]
        wh.query("DELETE FROM portfolio.other", read_only=False)  # any table: all forgotten
        hashes.clear()
        wh.content_fingerprints([table, "portfolio.other"], ("at",))
        assert hashes == [table, "portfolio.other"]
    assert wh.content_fingerprints([table], ("at",)) == after  # outside: computed each time


def test_a_write_by_another_process_is_seen_by_the_next_hash(path, hashes):
    table = "portfolio.target_weights"
    wh = Warehouse(path)
    with reusing_reads(path):
        before = wh.content_fingerprints([table])
        warehouse_module._held_reads(path).close()  # let the other process write
        code = (
            f"import duckdb; con = duckdb.connect({str(path)!r}); "
            "con.execute(\"DELETE FROM portfolio.target_weights WHERE strategy = 'a'\")"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        after = wh.content_fingerprints([table])
    assert before[table]["rows"] == 3 and after[table]["rows"] == 2
    assert hashes == [table, table]


def test_cumulative_hashes_are_computed_once_in_the_block_until_a_write(path, monkeypatch):
    table = "portfolio.target_weights"
    wh = Warehouse(path)
    passes = _recorded(monkeypatch, "_cumulative_hashes", lambda self, *args: args)
    plain = wh.cumulative_hashes(table, "at", ["weight"])
    with reusing_reads(path):
        first = wh.cumulative_hashes(table, "at", ["weight"])
        again = wh.cumulative_hashes(table, "at", ["weight"])
        assert len(passes) == 2  # the plain read, then one in the block
        assert_frame_equal(first, plain)
        assert_frame_equal(again, plain)
        wh.replace_table(table, FRAME.head(1))
        after = wh.cumulative_hashes(table, "at", ["weight"])
    assert len(passes) == 3 and after["rows"].to_list() == [1]

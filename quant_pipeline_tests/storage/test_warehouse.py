import subprocess
import sys
import textwrap
from contextlib import contextmanager
from datetime import UTC, date, datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quant_pipeline.core.data.schema import (
    RAW_FUNDAMENTALS,
    RAW_PRICES,
    RAW_SECURITIES,
    conform,
)
from quant_pipeline.storage.warehouse import (
    Warehouse,
    WarehouseError,
    WarehouseLockedError,
    WriteStats,
)

T0 = datetime(2024, 1, 1, 9, 30, 0, 123456, tzinfo=UTC)
T1 = datetime(2024, 2, 1, tzinfo=UTC)
D = [date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4)]


@pytest.fixture
def wh(tmp_path) -> Warehouse:
    return Warehouse(tmp_path / "sub" / "quant.duckdb")


def prices(close: list[float], ingested_at: datetime = T0, ticker: str = "A") -> pl.DataFrame:
    n = len(close)
    return conform(
        pl.DataFrame(
            {
                "ticker": [ticker] * n,
                "date": D[:n],
                "close": close,
                "volume": [100.0] * n,
                "source": ["demo"] * n,
                "ingested_at": [ingested_at] * n,
            }
        ),
        RAW_PRICES,
    )


def fundamentals(value: float, ingested_at: datetime) -> pl.DataFrame:
    return conform(
        pl.DataFrame(
            {
                "ticker": ["A", "A"],
                "period_end": [date(2023, 12, 31)] * 2,
                "period_type": ["Q", "Q"],
                "item": ["revenue", "net_income"],
                "value": [value, 5.0],
                "source": ["demo"] * 2,
                "ingested_at": [ingested_at] * 2,
            }
        ),
        RAW_FUNDAMENTALS,
    )


def sorted_raw(wh: Warehouse, dataset: str) -> pl.DataFrame:
    frame = wh.read_raw(dataset)
    return frame.sort(frame.columns)


def test_constructing_a_warehouse_opens_nothing(tmp_path):
    wh = Warehouse(tmp_path / "sub" / "quant.duckdb")
    assert not (tmp_path / "sub").exists()
    with pytest.raises(WarehouseError, match="does not exist yet"):
        wh.query("SELECT 1")
    wh.ensure_schemas()
    assert set(wh.tables()["table"]) >= {"prices", "fundamentals", "securities", "ingest_log"}


def test_writing_the_same_prices_twice_leaves_the_same_rows(wh):
    frame = prices([10.0, 11.0, 12.0])
    assert wh.write_raw("prices", frame) == WriteStats(inserted=3, updated=0, unchanged=0)
    assert wh.write_raw("prices", frame) == WriteStats(inserted=0, updated=0, unchanged=3)
    # UTC microsecond timestamps come back exactly
    assert_frame_equal(sorted_raw(wh, "prices"), frame)


def test_a_corrected_price_is_updated_in_place(wh):
    wh.write_raw("prices", prices([10.0, 11.0, 12.0]))
    stats = wh.write_raw("prices", prices([10.0, 11.5, 12.0], ingested_at=T1))
    assert stats == WriteStats(inserted=0, updated=1, unchanged=2)
    stored = sorted_raw(wh, "prices")
    assert stored["close"].to_list() == [10.0, 11.5, 12.0]
    assert stored["ingested_at"].to_list() == [T0, T1, T0]


def test_a_fundamentals_restatement_adds_a_vintage_and_keeps_the_old_one(wh):
    assert wh.write_raw("fundamentals", fundamentals(100.0, T0)).inserted == 2
    # the same values fetched again later add nothing
    assert wh.write_raw("fundamentals", fundamentals(100.0, T1)) == WriteStats(0, 0, 2)
    restated = fundamentals(90.0, T1)
    assert wh.write_raw("fundamentals", restated) == WriteStats(1, 0, 1)
    stored = wh.read_table("raw.fundamentals", filters={"item": "revenue"}).sort("ingested_at")
    assert stored.select("value", "ingested_at").rows() == [(100.0, T0), (90.0, T1)]
    # reverting to the original value is a new vintage too: it differs from the latest
    back = fundamentals(100.0, datetime(2024, 3, 1, tzinfo=UTC))
    assert wh.write_raw("fundamentals", back).inserted == 1
    assert wh.row_count("raw.fundamentals") == 4


def test_securities_keep_one_row_per_changed_profile(wh):
    def profile(sector: str, at: datetime) -> pl.DataFrame:
        frame = pl.DataFrame({"ticker": ["A"], "sector": [sector], "source": ["demo"]})
        return conform(frame.with_columns(ingested_at=pl.lit(at)), RAW_SECURITIES)

    wh.write_raw("securities", profile("Energy", T0))
    wh.write_raw("securities", profile("Energy", T1))
    wh.write_raw("securities", profile("Utilities", T1.replace(month=3)))
    assert wh.read_raw("securities")["sector"].sort().to_list() == ["Energy", "Utilities"]


def test_a_raw_table_from_before_a_new_column_keeps_its_rows_and_gains_the_column(wh):
    # raw.securities as a warehouse built before float_shares existed
    old_schema = {k: v for k, v in RAW_SECURITIES.items() if k != "float_shares"}
    old = conform(
        pl.DataFrame({"ticker": ["A"], "sector": ["Energy"], "source": ["demo"]}).with_columns(
            ingested_at=pl.lit(T0)
        ),
        old_schema,
    )
    with wh.connect() as con:
        con.execute('CREATE SCHEMA IF NOT EXISTS "raw"')
        con.register("_old", old.to_arrow())
        con.execute('CREATE TABLE "raw"."securities" AS SELECT * FROM _old')
    # read before any write: the missing column reads as null
    assert wh.read_raw("securities")["float_shares"].to_list() == [None]
    new = conform(
        pl.DataFrame(
            {"ticker": ["A"], "sector": ["Energy"], "float_shares": [900.0], "source": ["demo"]}
        ).with_columns(ingested_at=pl.lit(T1)),
        RAW_SECURITIES,
    )
    assert wh.write_raw("securities", new).inserted == 1  # the float is new information
    stored = wh.read_raw("securities").sort("ingested_at")
    assert stored.schema == pl.Schema(RAW_SECURITIES)
    assert stored.select("float_shares", "ingested_at").rows() == [(None, T0), (900.0, T1)]


def test_a_frame_with_a_wrong_dtype_is_refused_naming_table_and_column(wh):
    wh.write_raw("prices", prices([10.0, 11.0]))
    bad = prices([10.0, 99.0, 12.0]).with_columns(pl.col("volume").cast(pl.String))
    with pytest.raises(WarehouseError, match="raw.prices: column 'volume' has dtype String"):
        wh.write_raw("prices", bad)
    assert sorted_raw(wh, "prices")["close"].to_list() == [10.0, 11.0]


def test_a_failure_after_the_update_rolls_the_whole_write_back(wh, monkeypatch):
    wh.write_raw("prices", prices([10.0, 11.0]))

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    # the correction of row 2 runs first, then inserting row 3 fails
    monkeypatch.setattr(Warehouse, "_insert_new", staticmethod(explode))
    with pytest.raises(RuntimeError, match="disk full"):
        wh.write_raw("prices", prices([10.0, 99.0, 12.0], ingested_at=T1))
    assert_frame_equal(sorted_raw(wh, "prices"), prices([10.0, 11.0]))


def test_one_key_with_two_different_values_in_a_frame_is_refused(wh):
    frame = pl.concat([prices([10.0]), prices([10.5])])
    with pytest.raises(WarehouseError, match="different values for the same key"):
        wh.write_raw("prices", frame)
    # exact duplicates are harmless and collapse to one row
    assert wh.write_raw("prices", pl.concat([prices([10.0]), prices([10.0])])).inserted == 1


def test_null_keys_and_unknown_datasets_are_refused(wh):
    with pytest.raises(WarehouseError, match="null key column"):
        wh.write_raw("prices", prices([1.0]).with_columns(source=pl.lit(None, pl.String)))
    with pytest.raises(WarehouseError, match="unknown raw dataset 'quotes'"):
        wh.write_raw("quotes", prices([1.0]))


def test_replace_table_holds_exactly_the_new_rows(wh):
    wh.replace_table("curated.things", pl.DataFrame({"a": [1, 2, 3]}))
    wh.replace_table("curated.things", pl.DataFrame({"a": [4], "b": ["x"]}))
    assert_frame_equal(wh.read_table("curated.things"), pl.DataFrame({"a": [4], "b": ["x"]}))


class FailingUnregister:
    """A connection proxy whose unregister (after the CREATE OR REPLACE, before COMMIT) fails."""

    def __init__(self, con):
        self._con = con

    def __getattr__(self, name):
        return getattr(self._con, name)

    def unregister(self, name):
        raise RuntimeError("crash before commit")


def test_replace_table_failing_midway_keeps_the_old_table(wh, monkeypatch):
    wh.replace_table("curated.things", pl.DataFrame({"a": [1, 2, 3]}))
    real_connect = Warehouse.connect

    @contextmanager
    def connect(self, read_only=False, **kwargs):
        with real_connect(self, read_only, **kwargs) as con:
            yield FailingUnregister(con)

    monkeypatch.setattr(Warehouse, "connect", connect)
    with pytest.raises(RuntimeError, match="crash before commit"):
        wh.replace_table("curated.things", pl.DataFrame({"a": [9]}))
    monkeypatch.undo()
    assert wh.read_table("curated.things")["a"].to_list() == [1, 2, 3]


def test_replace_partition_replaces_one_strategy_and_keeps_the_others(wh):
    both = pl.DataFrame({"strategy": ["value", "value", "momentum"], "w": [0.5, 0.5, 1.0]})
    wh.replace_partition("portfolio.weights", both, "strategy", ["value", "momentum"])
    new_value = pl.DataFrame({"strategy": ["value"], "w": [1.0]})
    for _ in range(2):  # idempotent
        wh.replace_partition("portfolio.weights", new_value, "strategy", ["value"])
    stored = wh.read_table("portfolio.weights").sort("strategy")
    assert stored.rows() == [("momentum", 1.0), ("value", 1.0)]
    with pytest.raises(WarehouseError, match="not in the partition keys"):
        wh.replace_partition("portfolio.weights", both, "strategy", ["value"])


@pytest.mark.parametrize(
    "call",
    [
        lambda wh: wh.read_table("raw.prices; DROP TABLE raw.prices"),
        lambda wh: wh.read_table('raw."prices"'),
        lambda wh: wh.read_table("prices"),
        lambda wh: wh.read_table("raw.prices", columns=["close FROM raw.prices --"]),
        lambda wh: wh.read_table("raw.prices", filters={"1=1 OR ticker": "A"}),
        lambda wh: wh.replace_table("curated.x; DROP TABLE raw.prices", pl.DataFrame({"a": [1]})),
        lambda wh: wh.row_count("raw.Prices"),
        lambda wh: wh.max_date("raw.prices", "date) FROM raw.prices --"),
    ],
)
def test_identifiers_outside_the_whitelist_are_refused(wh, call):
    wh.write_raw("prices", prices([10.0]))
    with pytest.raises(WarehouseError, match="invalid (table|column) name"):
        call(wh)
    assert wh.row_count("raw.prices") == 1


def test_filter_values_are_bound_not_pasted(wh):
    wh.write_raw("prices", prices([10.0, 11.0, 12.0]))
    assert wh.read_table("raw.prices", filters={"ticker": "A' OR '1'='1"}).height == 0
    assert wh.read_table("raw.prices", filters={"date": [D[0], D[2]]})[
        "close"
    ].sort().to_list() == [
        10.0,
        12.0,
    ]
    assert wh.read_table("raw.prices", columns=["close"], filters={"date": D[1]}).rows() == [
        (11.0,)
    ]


def test_read_only_queries_cannot_write(wh):
    wh.write_raw("prices", prices([10.0]))
    with pytest.raises(WarehouseError, match="read-only"):
        wh.query("DELETE FROM raw.prices")
    with pytest.raises(WarehouseError, match="read-only"):
        wh.query("CREATE TABLE curated.x AS SELECT 1 AS a")
    assert wh.query("SELECT count(*) AS n FROM raw.prices WHERE close > ?", [5.0])["n"][0] == 1


def test_max_date_and_row_counts_support_incremental_refreshes(wh):
    assert wh.max_date("raw.prices", "date") is None  # no warehouse yet
    wh.ensure_schemas()
    assert wh.max_date("raw.prices", "date", {"ticker": "A"}) is None
    wh.write_raw("prices", prices([10.0, 11.0]))
    wh.write_raw("prices", prices([5.0, 6.0, 7.0], ticker="B"))
    assert wh.max_date("raw.prices", "date", {"ticker": "A"}) == D[1]
    assert wh.max_date("raw.prices", "date") == D[2]
    counts = wh.tables().filter(schema="raw", table="prices")
    assert counts["rows"].to_list() == [5]
    assert wh.read_raw("prices", source="yahoo").height == 0


def test_ingest_log_rows_are_appended(wh):
    log = pl.DataFrame(
        {
            "run_id": ["r1"],
            "dataset": ["prices"],
            "ticker": ["A"],
            "rows": [3],
            "status": ["ok"],
            "error": [None],
            "started_at": [T0],
            "finished_at": [T1],
        }
    )
    wh.log_ingest(log)
    wh.log_ingest(log)
    assert wh.row_count("raw.ingest_log") == 2
    stored = wh.read_table("raw.ingest_log")
    assert stored.select("run_id", "rows", "finished_at").row(0) == ("r1", 3, T1)


def test_a_lock_held_by_another_process_raises_a_clear_error(wh):
    wh.ensure_schemas()
    wh = Warehouse(wh.path, lock_timeout=0)  # fail at once instead of waiting
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time, duckdb
                con = duckdb.connect({str(wh.path)!r})
                print("locked", flush=True)
                sys.stdin.read()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(WarehouseLockedError, match="close other DuckDB sessions"):
            wh.write_raw("prices", prices([10.0]))
        with pytest.raises(WarehouseLockedError, match=r"locked by .+ \(PID \d+\); waited"):
            wh.query("SELECT 1")
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert wh.write_raw("prices", prices([10.0])).inserted == 1


def test_an_empty_fetch_writes_nothing_and_reads_back_the_raw_schema(wh):
    empty_prices = pl.DataFrame(schema=RAW_PRICES)
    assert wh.write_raw("prices", empty_prices) == WriteStats(0, 0, 0)
    assert wh.read_raw("prices").schema == pl.Schema(RAW_PRICES)


def test_holds_is_true_only_for_exactly_the_stored_rows_in_order(wh):
    frame = pl.DataFrame({"k": ["a", "b"], "v": [1.0, 2.0]})
    assert not wh.holds("factors.small", frame)  # no table yet
    wh.replace_table("factors.small", frame)
    assert wh.holds("factors.small", frame)
    assert not wh.holds("factors.small", frame.reverse())  # another order
    assert not wh.holds("factors.small", frame.with_columns(v=pl.col("v") + 1e-9))
    assert not wh.holds("factors.small", frame.with_columns(pl.col("v").cast(pl.Float32)))
    assert not wh.holds("factors.small", frame.head(1))
    assert not wh.holds("factors.small", frame, max_rows=1)  # too big to compare: no read

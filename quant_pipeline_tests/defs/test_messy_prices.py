"""Messy vendor rows are set aside in raw.rejected_rows; the ingestion goes on and keeps what
was stored before."""

from datetime import date

import dagster as dg

from quant_pipeline.app.cli import data_notes
from quant_pipeline.defs.ingestion import raw_prices
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.storage.warehouse import Warehouse

HEADER = "Date,Open,High,Low,Close,Volume,OpenInt\n"


def ingest_prices(data_dir, path):
    resources = {
        "warehouse": WarehouseResource(path=str(path)),
        "market": MarketDataResource(source="files", data_dir=str(data_dir)),
    }
    with dg.DagsterInstance.ephemeral() as instance:
        return dg.materialize([raw_prices], resources=resources, instance=instance)


def test_set_aside_rows_are_stored_counted_and_stored_good_rows_survive(tmp_path):
    folder = tmp_path / "data" / "prices"
    folder.mkdir(parents=True)
    (folder / "agm-a.us.txt").write_text(HEADER + "2010-01-04,1,2,0.5,1.5,100,0\n")
    path = tmp_path / "quant.duckdb"
    assert ingest_prices(tmp_path / "data", path).success
    # the vendor now ships agm_a as well, disagreeing on the stored day, plus junk
    (folder / "agm_a.us.txt").write_text(HEADER + "2010-01-04,1,2,0.5,9.9,100,0\n")
    (folder / "empty.us.txt").write_text("")
    (folder / "b.us.txt").write_text(
        HEADER + "2010-01-04,1,2,0.5,2.5,100,0\nnot a date,1,1,1,1,1,0\n"
    )
    result = ingest_prices(tmp_path / "data", path)
    assert result.success
    meta = result.asset_materializations_for_node("raw__prices")[0].metadata
    assert meta["rows_set_aside"].value == 4
    assert meta["set_aside_by_reason"].value == {
        "conflicting duplicate": 2,
        "bad date": 1,
        "empty file": 1,
    }
    warehouse = Warehouse(path)
    stored = warehouse.read_table("raw.prices", columns=["ticker", "date", "close"]).sort("ticker")
    # AGM-A's stored 1.5 is kept: the conflicting pair was set aside, not written over it
    assert stored.rows() == [("AGM-A", date(2010, 1, 4), 1.5), ("B", date(2010, 1, 4), 2.5)]
    rejected = warehouse.read_table("raw.rejected_rows")
    assert rejected.height == 4 and set(rejected["source"]) == {"files"}
    notes = "\n".join(data_notes(warehouse))
    assert "Set aside 4 input rows or files (see raw.rejected_rows):" in notes
    assert "2  prices: conflicting duplicate" in notes
    # a clean re-run replaces the list instead of adding to it
    for name in ("agm_a.us.txt", "empty.us.txt", "b.us.txt"):
        (folder / name).unlink()
    assert ingest_prices(tmp_path / "data", path).success
    assert warehouse.row_count("raw.rejected_rows") == 0

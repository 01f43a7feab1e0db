"""curated.prices is curated in ticker batches (issue 14, memory): the stored table equals the
curation of every raw row at once, row for row and in order, and a batch that fails leaves the
previous table whole."""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quant_pipeline.core.data import curation
from quant_pipeline.core.data import validation as validation_module
from quant_pipeline.core.data.price_rules import SpikeRule
from quant_pipeline.defs import curated as curated_module
from quant_pipeline.defs.curated import curated_prices
from quant_pipeline.defs.ingestion import ingestion_assets
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.storage.warehouse import Warehouse
from quant_pipeline_tests.pins import DEMO_END_ISO

TICKERS = 24


def _market() -> MarketDataResource:
    return MarketDataResource(
        source="demo", demo_tickers=TICKERS, demo_start="2023-01-01", demo_end=DEMO_END_ISO
    )


def _materialize(path, assets) -> dg.ExecuteInProcessResult:
    resources = {"warehouse": WarehouseResource(path=str(path)), "market": _market()}
    with dg.DagsterInstance.ephemeral() as instance:
        return dg.materialize(assets, resources=resources, instance=instance, raise_on_error=False)


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    (event,) = [
        e
        for e in result.asset_materializations_for_node("curated__prices")
        if e.asset_key == dg.AssetKey(["curated", "prices"])
    ]
    return {k: getattr(v, "value", v) for k, v in event.metadata.items()}


@pytest.fixture(scope="module")
def batched(tmp_path_factory):
    """Ingestion and curated prices on 24 demo tickers with batches of about 2,000 raw rows."""
    path = tmp_path_factory.mktemp("batches") / "quant.duckdb"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(curation, "PRICE_BATCH_ROWS", 2_000)
        result = _materialize(path, [*ingestion_assets, curated_prices])
    assert result.success
    return path, result


def test_the_batched_table_equals_curating_every_row_at_once(batched):
    path, result = batched
    wh = Warehouse(path)
    market = _market()
    whole = curation.curate_prices(
        wh.read_raw("prices", "demo"),
        wh.read_raw("corporate_actions", "demo"),
        as_of=market.as_of_date(),
        spikes=SpikeRule(market.spike_threshold, market.spike_reversal_days),
    )
    stored = wh.read_table("curated.prices")
    assert_frame_equal(stored, whole.prices)  # same rows, same order (ticker, date)
    assert_frame_equal(wh.read_table("curated.rejected_prices"), whole.rejected)
    meta = _metadata(result)
    rows_per_ticker = wh.ticker_rows("prices", "demo")["rows"]
    assert meta["ticker_batches"] == len(
        curation.ticker_batches(wh.ticker_rows("prices", "demo"), 2_000)
    )
    assert meta["ticker_batches"] >= TICKERS * rows_per_ticker.min() // 2_000 > 1
    assert meta["dagster/row_count"] == stored.height
    assert meta["tickers"] == stored["ticker"].n_unique() == TICKERS
    assert meta["last_date"] == str(stored["date"].max())


def test_a_batch_that_fails_validation_leaves_the_previous_table_whole(batched, monkeypatch):
    path, _ = batched
    wh = Warehouse(path)
    before = wh.read_table("curated.prices")
    calls = {"n": 0}
    real = validation_module.validate

    def validate(frame, table):
        calls["n"] += 1
        if calls["n"] == 3:
            raise validation_module.CuratedValidationError(f"{table}: batch 3 is broken")
        return real(frame, table)

    monkeypatch.setattr(curation, "PRICE_BATCH_ROWS", 2_000)
    monkeypatch.setattr(curated_module, "validate", validate)
    result = _materialize(path, [curated_prices])
    assert not result.success
    assert calls["n"] == 3
    assert_frame_equal(wh.read_table("curated.prices"), before)
    assert not [t for t in wh.tables()["table"].to_list() if "staging" in t]


def test_ticker_batches_cut_in_ticker_order_within_the_row_budget():
    rows = pl.DataFrame({"ticker": ["C", "A", "B", "D", "E"], "rows": [3, 2, 2, 9, 1]})
    assert curation.ticker_batches(rows, 4) == [["A", "B"], ["C"], ["D"], ["E"]]
    assert curation.ticker_batches(rows, 100) == [["A", "B", "C", "D", "E"]]
    assert curation.ticker_batches(rows.clear(), 4) == []
    with pytest.raises(ValueError, match="max_rows"):
        curation.ticker_batches(rows, 0)

"""How an incremental step writes (``defs.incremental``): what is kept, and what a write that
stops half-way leaves behind (never an old digest beside rows computed from newer inputs)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from quant_pipeline.core.data.fingerprints import CHANGED, KEPT, NEW
from quant_pipeline.defs.incremental import Incremental, WholeStep
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.storage.warehouse import Warehouse
from quant_pipeline_tests.pins import DEMO_END_ISO

STEP = Incremental("research.things", ("strategy",), "digests of the things")
WHOLE = WholeStep("research.whole", "the digest of the whole thing")
MARKET = MarketDataResource(source="demo", demo_end=DEMO_END_ISO)


@pytest.fixture
def warehouse(tmp_path: Path) -> WarehouseResource:
    return WarehouseResource(path=str(tmp_path / "quant.duckdb"))


def _digests(**by_strategy: str) -> pl.DataFrame:
    return pl.DataFrame({"strategy": list(by_strategy), "digest": list(by_strategy.values())})


def _rows(*strategies: str, value: float = 1.0) -> pl.DataFrame:
    return pl.DataFrame({"strategy": list(strategies), "value": [value] * len(strategies)})


def test_unchanged_keys_are_kept_and_changed_ones_replaced(warehouse: WarehouseResource) -> None:
    wh = warehouse.get()
    first = STEP.plan(warehouse, MARKET, _digests(a="1", b="1"))
    assert first.reasons == {NEW: 2}
    STEP.write(wh, MARKET, first, _rows("a", "b"))
    second = STEP.plan(warehouse, MARKET, _digests(a="1", b="2"))
    assert second.reasons == {KEPT: 1, CHANGED: 1}
    STEP.write(wh, MARKET, second, _rows("b", value=2.0))
    stored = wh.read_table("research.things").sort("strategy")
    assert stored.rows() == [("a", 1.0), ("b", 2.0)]
    assert wh.read_table(STEP.digests).sort("strategy").rows() == [("a", "1"), ("b", "2")]


def test_a_write_that_stops_half_way_leaves_the_replaced_keys_without_a_digest(
    warehouse: WarehouseResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """b's inputs changed; the write of its new rows fails after its old digest was forgotten:
    the next run finds no digest for b and recomputes it (a stays kept)."""
    wh = warehouse.get()
    STEP.write(wh, MARKET, STEP.plan(warehouse, MARKET, _digests(a="1", b="1")), _rows("a", "b"))
    reuse = STEP.plan(warehouse, MARKET, _digests(a="1", b="2"))
    real = Warehouse.replace_keys

    def failing(self: Warehouse, table: str, frame: pl.DataFrame, keys: pl.DataFrame) -> int:
        if table == "research.things":
            raise OSError("disk full")
        return real(self, table, frame, keys)

    monkeypatch.setattr(Warehouse, "replace_keys", failing)
    with pytest.raises(OSError, match="disk full"):
        STEP.write(wh, MARKET, reuse, _rows("b", value=2.0))
    monkeypatch.undo()
    assert wh.read_table(STEP.digests).rows() == [("a", "1")]
    again = STEP.plan(warehouse, MARKET, _digests(a="1", b="2"))
    assert again.reasons == {KEPT: 1, NEW: 1}
    assert again.computed["strategy"].to_list() == ["b"]


def test_a_whole_step_is_kept_only_while_its_digest_is_unchanged(
    warehouse: WarehouseResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    wh = warehouse.get()
    first = WHOLE.plan(warehouse, MARKET, "x")
    assert first.reasons == {NEW: 1}
    WHOLE.write(wh, first, {"research.whole": _rows("a")})
    assert WHOLE.plan(warehouse, MARKET, "x").reasons == {KEPT: 1}
    changed = WHOLE.plan(warehouse, MARKET, "y")
    assert changed.reasons == {CHANGED: 1}
    real = Warehouse.replace_table

    def failing(self: Warehouse, table: str, frame: pl.DataFrame) -> int:
        if table == "research.whole":
            raise OSError("disk full")
        return real(self, table, frame)

    monkeypatch.setattr(Warehouse, "replace_table", failing)
    with pytest.raises(OSError, match="disk full"):
        WHOLE.write(wh, changed, {"research.whole": _rows("b")})
    monkeypatch.undo()
    # the old rows stand but no digest claims them: even the old inputs recompute
    assert wh.read_table("research.whole")["strategy"].to_list() == ["a"]
    assert WHOLE.plan(warehouse, MARKET, "x").reasons == {NEW: 1}


def test_a_full_recompute_computes_every_key(warehouse: WarehouseResource) -> None:
    wh = warehouse.get()
    STEP.write(wh, MARKET, STEP.plan(warehouse, MARKET, _digests(a="1")), _rows("a"))
    forced = MarketDataResource(source="demo", demo_end=DEMO_END_ISO, incremental=False)
    reuse = STEP.plan(warehouse, forced, _digests(a="1"))
    assert reuse.kept.is_empty()
    assert reuse.computed["strategy"].to_list() == ["a"]


def test_the_fundamentals_vintage_keeps_the_stored_rows_of_kept_dates(tmp_path: Path):
    """factors.fundamentals_vintage of kept dates comes from the stored table and only the
    computed dates are counted again: the result equals counting every date; a kept date
    missing from the stored table makes the step count every date again."""
    from datetime import date

    from quant_pipeline.core.data import curation
    from quant_pipeline.core.data.calendar import rebalance_dates, trading_days
    from quant_pipeline.core.data.fingerprints import plan_reuse
    from quant_pipeline.core.factors.point_in_time import vintage_report
    from quant_pipeline.defs.factors import fundamentals_vintage
    from quant_pipeline.sources.demo import generate_market

    market = generate_market(12, date(2019, 1, 1), date(2021, 6, 30), seed=5)
    vintages = curation.fundamentals_vintages(market.fundamentals)
    prices = curation.curate_prices(market.prices, market.corporate_actions).prices
    dates = rebalance_dates(trading_days(prices), "monthly")
    full = vintage_report(vintages, dates)
    wh = Warehouse(tmp_path / "quant.duckdb")
    stored = full.with_columns(
        rows_point_in_time=pl.lit(-1, dtype=full["rows_point_in_time"].dtype)
    )
    wh.replace_table("factors.fundamentals_vintage", stored)  # marked: kept rows show
    digests = pl.DataFrame({"rebalance_date": dates, "digest": [str(d) for d in dates]})
    changed = digests.with_columns(
        digest=pl.when(pl.col("rebalance_date") >= dates[-2])
        .then(pl.lit("new"))
        .otherwise("digest")
    )
    reuse = plan_reuse(changed, digests, ["rebalance_date"])
    mixed = fundamentals_vintage(wh, reuse, vintages, dates)
    assert mixed.schema == full.schema
    assert mixed.filter(pl.col("rebalance_date") < dates[-2]).equals(
        stored.filter(pl.col("rebalance_date") < dates[-2])
    )
    assert mixed.filter(pl.col("rebalance_date") >= dates[-2]).equals(
        full.filter(pl.col("rebalance_date") >= dates[-2])
    )
    wh.replace_table("factors.fundamentals_vintage", full)
    assert fundamentals_vintage(wh, reuse, vintages, dates).equals(full)
    wh.replace_table(
        "factors.fundamentals_vintage", full.filter(pl.col("rebalance_date") != dates[0])
    )
    assert fundamentals_vintage(wh, reuse, vintages, dates).equals(full)

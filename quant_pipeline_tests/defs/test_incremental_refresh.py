"""Incremental and safe refresh through the ingestion assets.

``FakeSource`` is a tiny market implementing the Source protocol: tickers A and B trade every
weekday of January 2024, C from Monday 22 January; ``end`` cuts what it returns (the market as
known on that day). Closes are 100 + day of month; ``adj_close`` = close unless a dividend
restates it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import dagster as dg
import polars as pl
import pytest

from quant_pipeline.core.data.schema import (
    RAW_CORPORATE_ACTIONS,
    RAW_FUNDAMENTALS,
    RAW_MEMBERSHIP,
    RAW_PRICES,
    RAW_SECURITIES,
    conform,
)
from quant_pipeline.defs.ingestion import ingestion_assets, restated_tickers
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.sources.base import FetchRequest, Source
from quant_pipeline.storage.warehouse import Warehouse
from quant_pipeline_tests.pins import DEMO_END_ISO

RAW = ["prices", "corporate_actions", "fundamentals", "securities", "membership"]
JAN = [date(2024, 1, d) for d in range(1, 32) if date(2024, 1, d).weekday() < 5]  # 23 days
C_LISTED = date(2024, 1, 22)


class FakeSource:
    """A deterministic market cut at ``end``; records every price request."""

    name = "demo"  # the ingestion assets store rows under the configured source's name

    def __init__(self, end: date) -> None:
        self.end = end
        self.dividend_on: date | None = None  # B pays 1% on this day: earlier adj_close x 0.99
        self.revenue = 100.0
        self.sector = "Tech"
        self.requests: list[FetchRequest] = []

    def _stamp(self, rows: list[dict], schema: dict) -> pl.DataFrame:
        frame = pl.DataFrame(rows, schema={k: schema[k] for k in rows[0]} if rows else None)
        stamp = pl.lit(datetime.now(UTC)).cast(schema["ingested_at"])
        return conform(frame.with_columns(source=pl.lit("demo"), ingested_at=stamp), schema)

    def universe(self) -> list[str]:
        return ["A", "B", "C"]

    def prices(self, request: FetchRequest) -> pl.DataFrame:
        self.requests.append(request)
        rows = []
        for ticker in request.tickers or self.universe():
            start = request.per_ticker_start.get(ticker, date.min)
            for d in JAN:
                if d > self.end or d < start or (ticker == "C" and d < C_LISTED):
                    continue
                close = 100.0 + d.day
                adj = close
                if ticker == "B" and self.dividend_on and d < self.dividend_on <= self.end:
                    adj = close * 0.99
                rows.append({"ticker": ticker, "date": d, "close": close, "adj_close": adj})
        return self._stamp(rows, RAW_PRICES)

    def corporate_actions(self, request: FetchRequest) -> pl.DataFrame:
        return pl.DataFrame(schema=RAW_CORPORATE_ACTIONS)

    def fundamentals(self, request: FetchRequest) -> pl.DataFrame:
        rows = [
            {"ticker": t, "period_end": date(2023, 12, 31), "period_type": "Q", "item": item,
             "value": value}
            for t in ("A", "B")
            for item, value in (("revenue", self.revenue), ("net_income", 10.0))
        ]  # fmt: skip
        return self._stamp(rows, RAW_FUNDAMENTALS)

    def securities(self, request: FetchRequest) -> pl.DataFrame:
        rows = [{"ticker": t, "name": t, "sector": self.sector} for t in self.universe()]
        return self._stamp(rows, RAW_SECURITIES)

    def membership(self, request: FetchRequest) -> pl.DataFrame:
        rows = [{"universe": "fake", "ticker": t, "start_date": date(2020, 1, 1)} for t in "AB"]
        return self._stamp(rows, RAW_MEMBERSHIP)


_SOURCES: dict[str, Source] = {}


class FakeMarket(MarketDataResource):
    """The market resource serving a registered FakeSource (tests only)."""

    key: str

    def build_source(self) -> Source:
        return _SOURCES[self.key]


def refresh(path, source: FakeSource) -> dict[str, dict[str, object]]:
    """Materialize the ingestion assets from ``source``; metadata per dataset."""
    _SOURCES["fake"] = source
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            ingestion_assets,
            resources={
                "warehouse": WarehouseResource(path=str(path)),
                "market": FakeMarket(source="demo", key="fake"),
            },
            instance=instance,
        )
    meta = {}
    for dataset in RAW:
        (event,) = result.asset_materializations_for_node(f"raw__{dataset}")
        meta[dataset] = {k: getattr(v, "value", v) for k, v in event.metadata.items()}
    return meta


def counts(warehouse: Warehouse) -> dict[str, int]:
    return {d: warehouse.row_count(f"raw.{d}") for d in RAW}


@pytest.fixture
def path(tmp_path):
    return tmp_path / "quant.duckdb"


def test_a_second_refresh_with_no_new_data_writes_no_rows(path):
    first = refresh(path, FakeSource(end=date(2024, 1, 12)))
    before = counts(Warehouse(path))
    # A and B, 1-12 January: 10 weekdays each
    assert first["prices"]["rows_inserted"] == 20
    second = refresh(path, FakeSource(end=date(2024, 1, 12)))
    assert counts(Warehouse(path)) == before
    for dataset in RAW:
        assert second[dataset]["rows_inserted"] == 0, dataset
        assert second[dataset]["rows_updated"] == 0, dataset


def test_a_refresh_fetches_new_days_plus_overlap_for_known_tickers_and_all_of_a_new_one(path):
    refresh(path, FakeSource(end=date(2024, 1, 12)))
    later = FakeSource(end=date(2024, 1, 26))
    meta = refresh(path, later)["prices"]
    # last stored day 12 January - 7 days overlap = 5 January, for A and B; C is new
    assert later.requests[0].per_ticker_start == {"A": date(2024, 1, 5), "B": date(2024, 1, 5)}
    # A, B: 5 Jan + 8-12 + 15-19 + 22-26 = 16 days each; C: 22-26 = 5 days
    assert meta["rows_fetched"] == 16 + 16 + 5
    # new: A, B 15-26 January (10 each) and C (5); the 6 overlap days of A and B are unchanged
    assert (meta["rows_inserted"], meta["rows_updated"], meta["rows_unchanged"]) == (25, 0, 12)
    assert meta["restated_tickers"] == []
    stored = Warehouse(path).read_table("raw.prices")
    assert dict(stored.group_by("ticker").len().sort("ticker").iter_rows()) == {
        "A": 20,
        "B": 20,
        "C": 5,
    }


def test_a_dividend_that_restates_the_overlap_refetches_that_tickers_full_history(path):
    refresh(path, FakeSource(end=date(2024, 1, 12)))
    later = FakeSource(end=date(2024, 1, 26))
    later.dividend_on = date(2024, 1, 17)  # B's adjusted closes before 17 Jan become x 0.99
    meta = refresh(path, later)["prices"]
    assert meta["restated_tickers"] == ["B"]
    assert later.requests[1] == FetchRequest(tickers=("B",))
    # A 16 + C 5 windowed, B all 20 days; B's 10 stored days updated, A's 6 overlap unchanged
    assert meta["rows_fetched"] == 16 + 20 + 5
    assert (meta["rows_inserted"], meta["rows_updated"], meta["rows_unchanged"]) == (25, 10, 6)
    b = Warehouse(path).read_table("raw.prices", filters={"ticker": "B"}).sort("date")
    # 2 Jan: close 102, adjusted 102 x 0.99 = 100.98, on one basis with the later days
    assert b.filter(pl.col("date") == date(2024, 1, 2))["adj_close"].item() == pytest.approx(100.98)
    assert b.filter(pl.col("date") == date(2024, 1, 17))["adj_close"].item() == 117.0


def test_restated_fundamentals_and_profiles_add_a_vintage_and_keep_the_old_one(path):
    refresh(path, FakeSource(end=date(2024, 1, 12)))
    restated = FakeSource(end=date(2024, 1, 12))
    restated.revenue = 110.0  # both A and B restate Q4 revenue
    restated.sector = "Energy"  # all three profiles change
    meta = refresh(path, restated)
    assert meta["fundamentals"]["rows_inserted"] == 2
    assert meta["securities"]["rows_inserted"] == 3
    warehouse = Warehouse(path)
    revenue = (
        warehouse.read_table("raw.fundamentals", filters={"ticker": "A", "item": "revenue"})
        .sort("ingested_at")
        .select("value", "ingested_at")
    )
    assert revenue["value"].to_list() == [100.0, 110.0]
    assert revenue["ingested_at"][1] > revenue["ingested_at"][0]
    net_income = warehouse.read_table("raw.fundamentals", filters={"item": "net_income"})
    assert net_income.height == 2  # unchanged items add nothing
    sectors = warehouse.read_table("raw.securities", filters={"ticker": "C"}).sort("ingested_at")
    assert sectors["sector"].to_list() == ["Tech", "Energy"]


def test_restated_tickers_compares_close_and_adj_close_on_common_days_only():
    stored = pl.DataFrame(
        {
            "ticker": ["A", "A", "B", "C", "D"],
            "date": [date(2024, 1, 2), date(2024, 1, 3)] + [date(2024, 1, 3)] * 3,
            "close": [10.0, 11.0, 20.0, 30.0, 40.0],
            "adj_close": [9.0, 11.0, None, 30.0, 40.0],
        }
    )
    fetched = pl.DataFrame(
        {
            "ticker": ["A", "B", "C", "D", "E"],
            "date": [date(2024, 1, 3)] * 4 + [date(2024, 1, 4)],
            # A same; B null -> value; C close corrected; D within 1e-6 relative; E new
            "close": [11.0, 20.0, 30.5, 40.0 * (1 + 1e-8), 50.0],
            "adj_close": [11.0, 20.0, 30.5, 40.0, 50.0],
        }
    )
    assert restated_tickers(stored, fetched) == ["B", "C"]


def test_a_demo_refresh_twice_adds_nothing(path):
    resources = {
        "warehouse": WarehouseResource(path=str(path)),
        "market": MarketDataResource(
            source="demo", demo_tickers=60, demo_start="2016-01-01", demo_end=DEMO_END_ISO
        ),
    }
    results = []
    for _ in range(2):
        with dg.DagsterInstance.ephemeral() as instance:
            results.append(dg.materialize(ingestion_assets, resources=resources, instance=instance))
    for dataset in RAW:
        (event,) = results[1].asset_materializations_for_node(f"raw__{dataset}")
        assert event.metadata["rows_inserted"].value == 0, dataset
    assert Warehouse(path).row_count("raw.prices") > 0

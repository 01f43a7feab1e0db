"""The yahoo source through the ingestion assets and the CLI, offline.

``ReplayMarket`` is the market resource with a yahoo source whose session answers from the
recorded responses in ``../shared/fixtures/yahoo/`` (``failing`` tickers raise connection
errors); ``offline=True`` makes every request raise, as with no network. The source never
sleeps in these tests: the backoff pauses it asks for and the URLs an offline session was asked
for are recorded in ``OFFLINE_LOG`` instead, so tests assert on them rather than on a clock.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import requests

from quant_pipeline.app import cli
from quant_pipeline.defs.ingestion import ingestion_assets
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.sources.yahoo import YahooSource
from quant_pipeline.storage.warehouse import Warehouse
from quant_pipeline_tests.sources.yahoo_replay import ReplaySession

TICKERS = ["AAPL", "AMZN", "MSFT", "NVDA"]
RAW = ["prices", "corporate_actions", "fundamentals", "securities", "membership"]
ROUTES = ("chart", "timeseries", "quote", "quoteSummary")
MAX_WORKERS, RETRIES, ABORT_AFTER = 2, 1, 8


@dataclass
class OfflineLog:
    """What the latest offline source asked for: request URLs and backoff pauses (seconds)."""

    urls: list[str] = field(default_factory=list)
    pauses: list[float] = field(default_factory=list)


OFFLINE_LOG = OfflineLog()


class OfflineSession(requests.Session):
    """Every request fails as it does with no network (DNS resolution fails); URLs are logged."""

    def request(self, method, url, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        OFFLINE_LOG.urls.append(url)
        raise requests.ConnectionError(f"Failed to resolve '{url.split('/')[2]}' (offline)")


class ReplayMarket(MarketDataResource):
    """The yahoo source on recorded responses; the universe is ``tickers``."""

    fixtures_dir: str
    tickers: list[str]
    failing: list[str] = []
    offline: bool = False

    def build_source(self) -> YahooSource:
        if self.offline:
            session: requests.Session = OfflineSession()
        else:
            session = ReplaySession(Path(self.fixtures_dir))
            for ticker in self.failing:
                for route in ROUTES:
                    session.script(route, ticker, *[requests.ConnectionError("reset")] * 20)
        return YahooSource(
            self.tickers,
            session=session,
            max_workers=MAX_WORKERS,
            retries=RETRIES,
            abort_after=ABORT_AFTER,
            max_failed_share=self.yahoo_max_failed_share,
            run_id=self.run_id,
            sleep=OFFLINE_LOG.pauses.append,
            rng=random.Random(7),
        )


def _route(url: str) -> str | None:
    """The Yahoo endpoint a URL asks (None for cookie / consent / crumb requests)."""
    for marker, route in (
        ("/finance/chart/", "chart"),
        ("/timeseries/", "timeseries"),
        ("/quoteSummary/", "quoteSummary"),
        ("/calendar/earnings", "earnings"),
    ):
        if marker in url:
            return route
    return None


def market(yahoo_fixtures: Path, **kwargs) -> ReplayMarket:
    return ReplayMarket(source="yahoo", fixtures_dir=str(yahoo_fixtures), tickers=TICKERS, **kwargs)


def ingest(path: Path, resource: MarketDataResource) -> dg.ExecuteInProcessResult:
    from yfinance.data import YfData

    YfData.cache_get.cache_clear()  # yfinance memoises responses across Ticker objects
    with dg.DagsterInstance.ephemeral() as instance:
        return dg.materialize(
            ingestion_assets,
            resources={"warehouse": WarehouseResource(path=str(path)), "market": resource},
            instance=instance,
            raise_on_error=False,
        )


def metadata(result: dg.ExecuteInProcessResult, dataset: str) -> dict[str, object]:
    (event,) = result.asset_materializations_for_node(f"raw__{dataset}")
    return {k: getattr(v, "value", v) for k, v in event.metadata.items()}


def counts(warehouse: Warehouse) -> dict[str, int]:
    return {d: warehouse.row_count(f"raw.{d}") for d in RAW}


def keys(warehouse: Warehouse, dataset: str, columns: list[str]) -> set[tuple]:
    return set(warehouse.read_table(f"raw.{dataset}", columns=columns).iter_rows())


@pytest.fixture
def stocked(tmp_path, yahoo_fixtures, _yfinance_offline_cache):
    """A warehouse after one successful yahoo ingestion of the four tickers."""
    path = tmp_path / "quant.duckdb"
    result = ingest(path, market(yahoo_fixtures))
    assert result.success
    return path, result


def test_yahoo_ingestion_writes_every_raw_table_and_the_ingest_log(stocked):
    path, result = stocked
    warehouse = Warehouse(path)
    rows = counts(warehouse)
    assert all(rows[d] > 0 for d in RAW), rows
    prices = warehouse.read_table("raw.prices")
    assert sorted(prices["ticker"].unique()) == TICKERS
    assert prices["source"].unique().to_list() == ["yahoo"]
    actions = warehouse.read_table("raw.corporate_actions")
    assert ("NVDA", "split", 4.0) in set(actions.select("ticker", "action", "value").iter_rows())
    log = warehouse.read_table("raw.ingest_log")
    # one row per ticker and dataset fetched per ticker, labelled with the Dagster run id;
    # corporate actions reused the price responses (no second fetch)
    per_dataset = dict(log.group_by("dataset").len().iter_rows())
    assert per_dataset == {"prices": 4, "fundamentals": 4, "securities": 4}
    assert log["run_id"].unique().to_list() == [result.run_id]
    assert metadata(result, "prices")["failed_tickers"] == []
    # NVDA has no recorded statements nor profile: logged empty, named in the metadata
    assert metadata(result, "fundamentals")["failed_tickers"] == ["NVDA"]
    assert metadata(result, "securities")["failed_tickers"] == ["NVDA"]


def test_offline_ingestion_fails_saying_yahoo_is_unreachable_and_keeps_every_row(
    stocked, yahoo_fixtures
):
    path, _ = stocked
    warehouse = Warehouse(path)
    before = counts(warehouse)
    price_keys = keys(warehouse, "prices", ["ticker", "date", "close"])
    result = ingest(path, market(yahoo_fixtures, offline=True))
    assert not result.success
    failures = {e.step_key: e for e in result.all_events if e.is_step_failure}
    assert {"raw__prices", "raw__fundamentals", "raw__securities"} <= set(failures)
    message = failures["raw__prices"].step_failure_data.user_failure_data.description
    assert "unreachable" in message and "raw.prices is unchanged" in message
    failed = failures["raw__prices"].step_failure_data.user_failure_data.metadata
    assert failed["failed_tickers"].value == TICKERS
    # nothing lost, nothing rewritten; the attempts are in the ingest log
    assert counts(warehouse) == before
    assert keys(warehouse, "prices", ["ticker", "date", "close"]) == price_keys
    log = warehouse.read_table("raw.ingest_log").filter(pl.col("run_id") == result.run_id)
    assert set(log["status"]) == {"error"}
    assert set(log["ticker"]) == set(TICKERS)


def test_a_refresh_where_half_the_tickers_fail_keeps_every_row_and_names_them(
    stocked, yahoo_fixtures
):
    path, _ = stocked
    warehouse = Warehouse(path)
    before = counts(warehouse)
    price_keys = keys(warehouse, "prices", ["ticker", "date", "close", "adj_close"])
    result = ingest(path, market(yahoo_fixtures, failing=["MSFT", "AMZN"]))
    assert result.success  # 2 of 4 failed = 50%, not more than yahoo_max_failed_share
    meta = metadata(result, "prices")
    assert meta["failed_tickers"] == ["AMZN", "MSFT"]
    assert meta["failed_count"] == 2
    # the overlap re-fetched for AAPL and NVDA is unchanged: nothing inserted or rewritten
    assert (meta["rows_inserted"], meta["rows_updated"]) == (0, 0)
    assert counts(warehouse) == before
    assert keys(warehouse, "prices", ["ticker", "date", "close", "adj_close"]) == price_keys
    log = warehouse.read_table("raw.ingest_log").filter(
        (pl.col("run_id") == result.run_id) & (pl.col("dataset") == "prices")
    )
    status = dict(log.select("ticker", "status").iter_rows())
    assert status == {"AAPL": "ok", "NVDA": "ok", "MSFT": "error", "AMZN": "error"}
    assert "ConnectionError" in log.filter(pl.col("ticker") == "MSFT")["error"][0]


def test_more_failures_than_the_allowed_share_fail_the_asset_naming_the_tickers(
    stocked, yahoo_fixtures
):
    path, _ = stocked
    before = counts(Warehouse(path))
    resource = market(yahoo_fixtures, failing=["MSFT", "AMZN"], yahoo_max_failed_share=0.25)
    result = ingest(path, resource)
    failure = next(
        e for e in result.all_events if e.is_step_failure and e.step_key == "raw__prices"
    ).step_failure_data.user_failure_data
    assert "2 of 4 tickers failed" in failure.description
    assert failure.metadata["failed_tickers"].value == ["AMZN", "MSFT"]
    assert counts(Warehouse(path)) == before


def test_cli_run_on_yahoo_offline_gives_up_after_a_bounded_backoff_with_the_reason_on_stderr(
    stocked, yahoo_fixtures, monkeypatch, capsys
):
    path, _ = stocked
    before = counts(Warehouse(path))
    for var in ("SOURCE", "WAREHOUSE", "UNIVERSE"):
        monkeypatch.delenv(f"QUANT_PIPELINE_{var}", raising=False)  # restored after the test
    OFFLINE_LOG.urls.clear()
    OFFLINE_LOG.pauses.clear()
    # 12 tickers x (1 + RETRIES) attempts would be 24 requests per dataset without the abort
    many = [f"T{i:02d}" for i in range(12)]
    offline = ReplayMarket(fixtures_dir=str(yahoo_fixtures), tickers=many, offline=True)
    status = cli.main(
        ["run", "--source", "yahoo", "--warehouse", str(path)], resources={"market": offline}
    )
    assert status == 1
    err = capsys.readouterr().err
    assert "source=yahoo" in err
    assert "step raw__prices failed" in err and "unreachable" in err
    # Offline fails in seconds, not minutes: each dataset gives up after ABORT_AFTER network
    # failures (plus the attempts already in flight on the other workers) instead of retrying
    # every ticker, so the backoff the source asked for stays short.
    routes = Counter(r for r in map(_route, OFFLINE_LOG.urls) if r)
    assert routes, "the offline session was never asked for data"
    assert sum(routes.values()) <= 2 * (ABORT_AFTER + MAX_WORKERS), routes
    assert len(OFFLINE_LOG.pauses) <= ABORT_AFTER + MAX_WORKERS
    assert sum(OFFLINE_LOG.pauses) < 30, f"asked to wait {sum(OFFLINE_LOG.pauses):.0f} s"
    assert counts(Warehouse(path)) == before

"""The yahoo path end to end on recorded Yahoo responses: ingestion, curated tables, factors, a
price-only and a fundamental strategy, the backtest, benchmarks and orders, offline.

The recordings (``../shared/fixtures/yahoo/``) give TSLA 2010-2023 daily bars (momentum has a
year of history), AAPL and MSFT 2025-04-30 to 2025-10-29 with their statements and profiles
(magic formula), QQQ one priced day of 2020 (fetched, but no return to compare with) and no SPY;
TSLA doubles as a benchmark ticker found in the data.
"""

from __future__ import annotations

import random
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from quant_pipeline.definitions import all_assets, asset_checks
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.sources.yahoo import YahooSource
from quant_pipeline.storage.warehouse import Warehouse
from quant_pipeline_tests.sources.yahoo_replay import ReplaySession, _load_body


class RecentCharts(ReplaySession):
    """AAPL and MSFT answer with their 2025 recordings (yfinance-rs), the period their recorded
    statements cover, instead of the longest recording (2020-2022)."""

    def _chart(self, symbol: str):
        recent = self.rs / f"history_chart_{symbol}.json"
        if symbol in ("AAPL", "MSFT") and recent.is_file():
            return _load_body(recent)
        return super()._chart(symbol)


class RecordedYahoo(MarketDataResource):
    """The yahoo source answering from the recorded responses."""

    fixtures_dir: str
    tickers: list[str]

    def build_source(self) -> YahooSource:
        return YahooSource(
            self.tickers,
            session=RecentCharts(Path(self.fixtures_dir)),
            max_workers=2,
            retries=0,
            sleep=lambda _s: None,
            rng=random.Random(7),
            run_id=self.run_id,
            benchmark_tickers=self.benchmark_tickers,
        )


@pytest.fixture(scope="module")
def yahoo_run(yahoo_fixtures, tmp_path_factory):
    from yfinance.data import YfData

    root = tmp_path_factory.mktemp("yahoo_e2e")
    mp = pytest.MonkeyPatch()
    mp.setenv("QUANT_PIPELINE_REPORTS_DIR", str(root / "reports"))
    import yfinance as yf

    yf.set_tz_cache_location(str(root / "yf-cache"))
    YfData.cache_get.cache_clear()
    market = RecordedYahoo(
        source="yahoo",
        fixtures_dir=str(yahoo_fixtures),
        tickers=["AAPL", "MSFT", "TSLA"],
        strategies=["momentum_12_1", "magic_formula"],
        benchmark_tickers=["QQQ", "SPY", "TSLA"],
    )
    resources = {"warehouse": WarehouseResource(path=str(root / "quant.duckdb")), "market": market}
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [*all_assets, *asset_checks],
            resources=resources,
            instance=instance,
            raise_on_error=False,
        )
    YfData.cache_get.cache_clear()
    yield result, Warehouse(root / "quant.duckdb"), root
    mp.undo()


def test_the_whole_chain_runs_on_recorded_yahoo_responses(yahoo_run):
    result, warehouse, _ = yahoo_run
    failures = [e.step_failure_data.error.message for e in result.all_events if e.is_step_failure]
    assert result.success, failures
    priced = set(warehouse.read_table("curated.prices", columns=["ticker"])["ticker"])
    assert priced == {"AAPL", "MSFT", "TSLA", "QQQ"}
    comparison = warehouse.read_table("backtest.comparison")
    assert set(comparison["strategy"]) == {"momentum_12_1", "magic_formula"}
    common = set(warehouse.read_table("backtest.comparison_common_window")["strategy"])
    assert common == {"momentum_12_1", "magic_formula", "benchmark"}


def test_the_price_only_and_the_fundamental_strategy_both_hold_names(yahoo_run):
    _, warehouse, _ = yahoo_run
    weights = warehouse.read_table("portfolio.target_weights").filter(pl.col("weight") > 0)
    held = {s: set(g["ticker"]) for (s,), g in weights.group_by("strategy")}
    # momentum needs only prices: TSLA, once an S&P member (2020-12-21) with a year of history
    assert held["momentum_12_1"] == {"TSLA"}
    # the magic formula needs statements: AAPL's EBIT, working capital and PP&E (MSFT's
    # recorded statements have no EBIT, so it cannot be ranked)
    assert held["magic_formula"] == {"AAPL"}
    trades = warehouse.read_table("backtest.trades")
    assert set(trades["strategy"]) == {"momentum_12_1", "magic_formula"}


def test_recorded_benchmarks_are_stored_and_a_missing_one_is_named(yahoo_run):
    result, warehouse, _ = yahoo_run
    benchmarks = set(warehouse.read_table("backtest.benchmarks")["benchmark"])
    assert benchmarks == {"equal_weight", "cap_weight", "TSLA"}
    # QQQ was fetched beside the universe, but its recording holds one priced day (no return);
    # SPY has no recording (Yahoo's "Not Found"): both named, neither fails the run
    assert "QQQ" in set(warehouse.read_table("raw.prices", columns=["ticker"])["ticker"])
    (event,) = [
        m
        for m in result.asset_materializations_for_node("backtest__benchmarks")
        if m.asset_key == dg.AssetKey(["backtest", "benchmarks"])
    ]
    assert event.metadata["missing_benchmarks"].value == ["QQQ", "SPY"]
    # QQQ is priced but is no member of the universe: no strategy can hold it
    values = warehouse.read_table("factors.values", columns=["ticker", "in_universe"])
    assert not values.filter(pl.col("ticker") == "QQQ")["in_universe"].any()


def test_orders_from_the_yahoo_warehouse_for_holdings_named_by_company(
    yahoo_run, monkeypatch, capsys
):
    from quant_pipeline.app.cli import main

    _, warehouse, root = yahoo_run
    monkeypatch.setenv("QUANT_PIPELINE_WAREHOUSE", str(warehouse.path))
    monkeypatch.setenv("QUANT_PIPELINE_PORTFOLIOS", str(root / "portfolios.yaml"))
    holdings = root / "holdings.csv"
    # the names as Yahoo's profiles spell them, written the way people do
    holdings.write_text("Stock Name,Number of Shares\nmicrosoft corp,3\n")
    code = main(
        [
            "orders",
            "--strategy",
            "magic_formula",
            "--holdings",
            str(holdings),
            "--cash",
            "2000",
            "--as-of",
            "2025-10-29",
            "--outbox",
            str(root / "outbox"),
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    rows = {
        cells[0]: cells
        for line in out.out.splitlines()
        if line.startswith("│")
        for cells in [[c.strip() for c in line.strip("│").split("┆")]]
    }
    # MSFT 3 x 541.55 = 1,624.65 sold, + 2,000 cash: 13 AAPL at 269.70 (3,506.10, $1 fee each)
    assert rows["MSFT"][6:8] == ["-3.0000", "SELL"]
    assert rows["AAPL"][6:9] == ["13.0000", "BUY", "3506.1002"]
    assert "portfolio value $3,624.65" in out.out
    (packet,) = (root / "outbox").glob("*_packet.json")
    assert '"data_source": "yahoo"' in packet.read_text()

"""The whole chain on a small demo market, materialized into a temporary warehouse."""

import dagster as dg
import polars as pl
import pytest

from quant_pipeline.core.strategy import load_strategies
from quant_pipeline.definitions import all_assets, asset_checks
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.storage.warehouse import Warehouse

CONTRACT_TABLES = [
    "raw.prices",
    "raw.fundamentals",
    "raw.securities",
    "curated.prices",
    "curated.fundamentals",
    "curated.securities",
    "factors.scores",
    "portfolio.target_weights",
    "backtest.daily",
    "backtest.metrics",
    "backtest.trades",
]


def _materialize(path):
    resources = {
        "warehouse": WarehouseResource(path=str(path)),
        "market": MarketDataResource(source="demo", demo_tickers=150, demo_start="2016-01-01"),
    }
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [*all_assets, *asset_checks], resources=resources, instance=instance
        )
    assert result.success
    return Warehouse(path)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    path = tmp_path_factory.mktemp("e2e") / "quant.duckdb"
    warehouse = _materialize(path)
    counts = {t: warehouse.row_count(t) for t in CONTRACT_TABLES}
    return path, warehouse, counts


def test_every_contract_table_has_rows(built):
    _, _, counts = built
    empty = [t for t, n in counts.items() if n == 0]
    assert not empty, f"empty contract tables: {empty}"


def test_materializing_twice_leaves_the_same_row_counts(built):
    path, _, counts = built
    again = _materialize(path)
    assert {t: again.row_count(t) for t in CONTRACT_TABLES} == counts


def test_weights_sum_to_one_for_every_strategy_and_date(built):
    # factor strategies are fully invested; staggered and signal kinds hold cash in free slots
    _, warehouse, _ = built
    factor = [n for n, s in load_strategies().items() if s.kind == "factor"]
    sums = (
        warehouse.read_table("portfolio.target_weights")
        .group_by("strategy", "rebalance_date")
        .agg(pl.col("weight").sum())
    )
    invested = sums.filter(pl.col("strategy").is_in(factor))
    assert invested.height > 0
    assert (invested["weight"] - 1).abs().max() < 1e-9
    assert sums["weight"].max() < 1 + 1e-9


def test_metrics_cover_both_shipped_strategies_and_the_benchmark(built):
    _, warehouse, _ = built
    metrics = warehouse.read_table("backtest.metrics")
    strategies = set(metrics["strategy"].unique())
    assert {"multifactor_smallcap", "magic_formula", "benchmark"} <= strategies
    sharpe = metrics.filter(pl.col("metric") == "sharpe_ratio")
    assert sharpe.height == len(strategies)
    assert sharpe["value"].is_finite().all()


def test_no_rebalance_uses_fundamentals_available_on_or_after_its_date(built):
    _, warehouse, _ = built
    values = warehouse.read_table("factors.values")
    late = values.filter(pl.col("fundamentals_available_at") >= pl.col("rebalance_date"))
    assert late.is_empty()

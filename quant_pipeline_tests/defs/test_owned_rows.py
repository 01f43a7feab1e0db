"""A run restricted to some strategies replaces only those strategies' rows (issue 13, item 5).

A small pinned demo market; a run of magic_formula and momentum_12_1, then a run of
magic_formula alone: every strategy-keyed table keeps momentum_12_1's rows exactly.
"""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest

from quant_pipeline.definitions import all_assets, asset_checks
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.storage.warehouse import Warehouse

# (table, key column, the key of the strategy the second run does not own)
KEPT = [
    ("factors.scores", "strategy", "momentum_12_1"),
    ("factors.score_components", "strategy", "momentum_12_1"),
    ("portfolio.target_weights", "strategy", "momentum_12_1"),
    ("portfolio.constraint_report", "strategy", "momentum_12_1"),
    ("backtest.daily", "strategy", "momentum_12_1"),
    ("backtest.trades", "strategy", "momentum_12_1"),
    ("backtest.fills", "strategy", "momentum_12_1"),
    ("backtest.positions", "strategy", "momentum_12_1"),
    ("backtest.settings", "strategy", "momentum_12_1"),
    ("backtest.quarterly", "strategy", "momentum_12_1"),
    ("backtest.labels", "strategy", "momentum_12_1"),
    ("backtest.metrics", "strategy", "momentum_12_1"),
    ("backtest.comparison", "strategy", "momentum_12_1"),
    ("backtest.monthly_returns", "strategy", "momentum_12_1"),
    ("research.luck", "strategy", "momentum_12_1"),
    ("research.factor_summary", "factor", "strategy:momentum_12_1"),
]


def run(path, strategies: list[str]) -> None:
    market = MarketDataResource(source="demo", demo_tickers=60, demo_start="2017-01-01",
                                demo_end="2020-12-31", strategies=strategies)  # fmt: skip
    with dg.DagsterInstance.ephemeral() as instance, pytest.MonkeyPatch.context() as env:
        env.setenv("QUANT_PIPELINE_REPORTS_DIR", str(path.parent / "reports"))
        result = dg.materialize(
            [*all_assets, *asset_checks],
            resources={"warehouse": WarehouseResource(path=str(path)), "market": market},
            instance=instance,
        )
    assert result.success


def rows(warehouse: Warehouse, table: str, column: str, key: str) -> pl.DataFrame:
    frame = warehouse.read_table(table, filters={column: key})
    return frame.drop([c for c in frame.columns if c in ("generated_at",)]).sort(frame.columns)


def test_a_restricted_run_replaces_only_its_own_strategies_rows(tmp_path):
    path = tmp_path / "quant.duckdb"
    run(path, ["magic_formula", "momentum_12_1"])
    warehouse = Warehouse(path)
    before = {t: rows(warehouse, t, c, k) for t, c, k in KEPT}
    assert all(frame.height for frame in before.values()), [
        t for t, f in before.items() if not f.height
    ]
    own_before = warehouse.read_table("backtest.daily", filters={"strategy": "magic_formula"})
    screened = warehouse.read_table("universe.screened").sort("ticker")
    run(path, ["magic_formula"])
    for table, column, key in KEPT:
        assert rows(warehouse, table, column, key).equals(before[table]), table
    # no strategy key: rebuilt whole from the same curated tables, so the same rows
    assert warehouse.read_table("universe.screened").sort("ticker").equals(screened)
    own_after = warehouse.read_table("backtest.daily", filters={"strategy": "magic_formula"})
    assert own_after.height == own_before.height  # rewritten, not doubled
    strategies = set(warehouse.read_table("backtest.comparison")["strategy"])
    assert {"magic_formula", "momentum_12_1"} <= strategies
    common = set(warehouse.read_table("backtest.comparison_common_window")["strategy"])
    assert {"magic_formula", "momentum_12_1", "benchmark"} <= common

"""The research guard assets on tiny warehouse tables written by the test."""

from datetime import date, timedelta

import dagster as dg
import numpy as np
import polars as pl
import pytest

from quant_pipeline.defs.research_guards import research_multiple_testing
from quant_pipeline.defs.resources import WarehouseResource
from quant_pipeline.storage.warehouse import Warehouse


def _daily(n_days: int = 64) -> pl.DataFrame:
    rng = np.random.default_rng(5)
    days = [date(2022, 1, 3) + timedelta(days=i) for i in range(n_days)]
    frames = [
        pl.DataFrame(
            {
                "strategy": name,
                "date": days,
                "portfolio_return": rng.normal(drift, 0.01, n_days),
                "benchmark_return": np.linspace(-0.002, 0.003, n_days),
            }
        )
        for name, drift in (("a", 0.001), ("b", 0.0), ("c", -0.0005))
    ]
    return pl.concat(frames)


def test_multiple_testing_asset_writes_one_row_per_strategy_with_pbo_and_a_chart(tmp_path):
    path = tmp_path / "quant.duckdb"
    Warehouse(path).replace_table("backtest.daily", _daily())
    result = dg.materialize(
        [research_multiple_testing], resources={"warehouse": WarehouseResource(path=str(path))}
    )
    assert result.success
    table = Warehouse(path).read_table("research.multiple_testing")
    assert sorted(table["strategy"]) == ["a", "b", "c"]
    assert table["n_trials"].to_list() == [3, 3, 3]
    assert table["pbo"].n_unique() == 1 and 0.0 <= table["pbo"][0] <= 1.0
    assert (table["deflated_sharpe_ratio"] <= table["probabilistic_sharpe_ratio"]).all()
    meta = result.asset_materializations_for_node("research__multiple_testing")[0].metadata
    assert "data:image/png;base64" in meta["pbo_chart"].value
    assert meta["dagster/row_count"].value == 3
    assert table["stated_sharpe"].to_list() == pytest.approx([1.0] * 3)

"""One small demo market materialized once per test session, shared by the modules that only
read it (wiring, integrity, the strategy library): each full chain costs a minute, so modules
that need nothing of their own share this one instead of building three alike.

Modules that change the stored tables (a second run, restricted runs, refreshes) build their own.
Under ``make test`` (``pytest -n auto --dist loadfile``) each worker that runs one of these
modules builds the chain once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from quant_pipeline.definitions import all_assets, asset_checks
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline_tests.pins import DEMO_END_ISO

DELISTING_RETURN = -0.3


def market(**fields: object) -> MarketDataResource:
    """The shared chain's market: 60 demo tickers from 2016 to the pinned end date (``fields``:
    other resource fields, e.g. ``incremental=False``)."""
    return MarketDataResource(
        source="demo", demo_tickers=60, demo_start="2016-01-01", demo_end=DEMO_END_ISO, **fields
    )


def resources(path: Path) -> dict[str, object]:
    return {"warehouse": WarehouseResource(path=str(path)), "market": market()}


@dataclass(frozen=True)
class Chain:
    path: Path
    result: dg.ExecuteInProcessResult


def build_chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    """Every asset and check on :func:`market`, with a delisting return of -30%."""
    path = tmp_path_factory.mktemp("demo_chain") / "quant.duckdb"
    with dg.DagsterInstance.ephemeral() as instance, pytest.MonkeyPatch.context() as env:
        env.setenv("QUANT_PIPELINE_REPORTS_DIR", str(path.parent / "reports"))
        result = dg.materialize(
            [*all_assets, *asset_checks],
            resources=resources(path),
            instance=instance,
            run_config={
                "ops": {"backtest_results": {"config": {"delisting_return": DELISTING_RETURN}}}
            },
        )
    assert result.success
    return Chain(path, result)

"""The wiring is declarative: one reads(...) per step gives its deps; reads never write."""

import os
import re
import shutil

import dagster as dg
import polars as pl
import pytest

from quant_pipeline.definitions import all_assets, asset_checks, defs
from quant_pipeline.defs.checks import (
    curated_prices_unique_per_ticker_day,
    target_weights_sum_to_one,
)
from quant_pipeline.defs.health import (
    drawdown_within_limit,
    position_weight_within_cap,
    sector_weight_within_cap,
)
from quant_pipeline.defs.integrity import (
    LookaheadAuditConfig,
    scores_match_point_in_time_recomputation,
)
from quant_pipeline.defs.reports import PARALLEL_PAGES, page_workers
from quant_pipeline.defs.resources import WarehouseResource
from quant_pipeline.defs.tables import DECLARED, UndeclaredReadError, asset_key, reads
from quant_pipeline.storage.warehouse import Warehouse, WarehouseReadOnlyError
from quant_pipeline_tests.defs import chain

# Written by a step next to its main table and read by other steps (issue 11): now assets.
SIDE_TABLES = {
    "curated.rejected_prices": "curated",
    "curated.fundamentals_vintages": "curated",
    "factors.rebalance_dates": "factors",
    "factors.fundamentals_vintage": "factors",
    "factors.score_components": "factors",
    "portfolio.constraint_report": "portfolio",
    "backtest.comparison": "backtest",
}


def _graph():
    return defs.get_repository_def().asset_graph


def test_every_table_a_step_reads_is_an_asset_of_the_definitions():
    graph = _graph()
    listed = {a.key for a in all_assets if isinstance(a, dg.AssetSpec)}
    assets = {k for k in graph.get_all_asset_keys() if graph.get(k).is_materializable} | listed
    declared = {table for step in DECLARED for table in step.tables}
    assert len(declared) > 20  # the declarations of every module were collected
    missing = sorted(t for t in declared if asset_key(t) not in assets)
    assert not missing, f"read by a step but no asset writes them: {missing}"


def test_no_asset_or_check_depends_on_a_key_outside_the_definitions():
    graph = _graph()
    keys = graph.get_all_asset_keys()
    # An undeclared dependency would appear as an external stub asset; the only external assets
    # are the AssetSpecs the project lists itself (watchlist/symbols, written by the CLI).
    listed_external = {a.key for a in all_assets if isinstance(a, dg.AssetSpec)}
    stubs = {k for k in keys if not graph.get(k).is_materializable} - listed_external
    assert not stubs, sorted(k.to_user_string() for k in stubs)
    for check in asset_checks:
        for spec in check.check_specs:
            assert spec.asset_key in keys
            assert {dep.asset_key for dep in spec.additional_deps} <= keys, spec.name


def test_the_tables_written_beside_a_main_table_are_assets_with_description_kinds_and_group():
    graph = _graph()
    for table, group in SIDE_TABLES.items():
        node = graph.get(asset_key(table))
        assert node.group_name == group, table
        assert node.description and "\n" not in node.description, table
        assert "duckdb" in node.kinds, table


def test_each_step_depends_on_exactly_the_tables_it_declares():
    graph = _graph()
    # factors.values reads the vintages (not curated.fundamentals, as its old deps said)
    parents = graph.get(asset_key("factors.values")).parent_keys
    assert asset_key("curated.fundamentals_vintages") in parents
    assert asset_key("curated.fundamentals") not in parents
    # research.luck reads the rebalance dates, which its old deps left out
    assert asset_key("factors.rebalance_dates") in graph.get(asset_key("research.luck")).parent_keys


def test_a_step_cannot_read_a_table_it_did_not_declare(tmp_path):
    wh = Warehouse(tmp_path / "quant.duckdb")
    wh.replace_table("curated.prices", pl.DataFrame({"ticker": ["A"], "close": [1.0]}))
    wh.replace_table("curated.securities", pl.DataFrame({"ticker": ["A"], "sector": ["X"]}))
    read = reads("curated.prices").reader(Warehouse(wh.path, read_only=True))
    DECLARED.pop()  # this test's declaration is no step of the Definitions
    assert read("curated.prices")["close"].to_list() == [1.0]
    with pytest.raises(UndeclaredReadError, match="curated.securities is not declared"):
        read("curated.securities")
    with pytest.raises(UndeclaredReadError, match="raw.prices is not declared"):
        read.raw("prices")


def test_a_table_declared_twice_or_not_schema_dot_table_is_refused():
    with pytest.raises(ValueError, match="declared twice"):
        reads("curated.prices", "curated.prices")
    with pytest.raises(ValueError, match="not 'schema.table'"):
        reads("prices")


class WriteRefusingWarehouse(WarehouseResource):
    """The warehouse resource of a step that must only read: asking for the writer fails."""

    def get(self) -> Warehouse:
        raise AssertionError("a read-only step asked for the writing warehouse")


_market = chain.market


@pytest.fixture(scope="module")
def built(demo_chain):
    return demo_chain.path, demo_chain.result


def test_each_side_table_reports_the_row_count_the_warehouse_holds(built):
    path, result = built
    wh = Warehouse(path)
    events = {e.asset_key: e.materialization for e in result.get_asset_materialization_events()}
    for table in SIDE_TABLES:
        metadata = events[asset_key(table)].metadata
        assert metadata["dagster/row_count"].value == wh.row_count(table), table
        assert metadata["dagster/table_name"].value == table
    assert wh.row_count("factors.rebalance_dates") > 0
    assert wh.row_count("backtest.comparison") > 0


def test_every_check_runs_on_the_read_only_warehouse(built):
    path, _ = built
    warehouse = WriteRefusingWarehouse(path=str(path))
    market = _market()
    results = [
        target_weights_sum_to_one(market=market, warehouse=warehouse),
        curated_prices_unique_per_ticker_day(warehouse=warehouse),
        scores_match_point_in_time_recomputation(
            dg.build_asset_check_context(),
            LookaheadAuditConfig(sample_dates=1),
            market=market,
            warehouse=warehouse,
        ),
        drawdown_within_limit(warehouse=warehouse),
        sector_weight_within_cap(warehouse=warehouse),
        position_weight_within_cap(warehouse=warehouse),
    ]
    assert all(r.passed for r in results), [r.description for r in results if not r.passed]


def test_a_write_through_the_resource_read_only_warehouse_raises(built):
    path, _ = built
    before = Warehouse(path).read_table("backtest.comparison")
    with pytest.raises(WarehouseReadOnlyError, match="cannot write backtest.comparison"):
        WarehouseResource(path=str(path)).read_only().replace_table("backtest.comparison", before)
    assert Warehouse(path).row_count("backtest.comparison") == before.height


def test_a_write_step_given_the_refusing_resource_fails_before_writing(built):
    # the control of the test above: steps that write do ask for the writing warehouse
    path, _ = built
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [*all_assets],
            selection=[asset_key("backtest.relative_metrics")],
            resources={"warehouse": WriteRefusingWarehouse(path=str(path)), "market": _market()},
            instance=instance,
            raise_on_error=False,
        )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_key == "backtest__relative_metrics"
    assert "asked for the writing warehouse" in failure.step_failure_data.error.cause.message


def test_tear_sheets_drawn_on_two_processes_are_the_pages_drawn_in_the_steps_own(
    built, tmp_path, monkeypatch
):
    # the suite draws in the step's own process (conftest: QUANT_PIPELINE_PAGE_WORKERS=1)
    path, _ = built
    copy = tmp_path / "quant.duckdb"
    shutil.copyfile(path, copy)
    monkeypatch.setenv("QUANT_PIPELINE_PAGE_WORKERS", "2")
    monkeypatch.setenv("QUANT_PIPELINE_REPORTS_DIR", str(tmp_path / "reports"))
    market = _market(incremental=False)  # every page drawn again
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [*all_assets],
            selection=[asset_key("backtest.tear_sheets")],
            resources={"warehouse": WarehouseResource(path=str(copy)), "market": market},
            instance=instance,
        )
    (event,) = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    serial = sorted((path.parent / "reports").glob("*.html"))
    assert metadata["pages_drawn"].value == len(serial) - 1  # and index.html
    assert metadata["drawing_processes"].value == min(2, os.cpu_count() or 1)
    stamp = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")
    for page in serial:
        drawn = (tmp_path / "reports" / page.name).read_text()
        assert stamp.sub("", drawn) == stamp.sub("", page.read_text()), page.name


def test_page_workers_start_at_four_pages_and_never_exceed_the_cpus(monkeypatch):
    cpus = os.cpu_count() or 1
    monkeypatch.setenv("QUANT_PIPELINE_PAGE_WORKERS", "2")
    assert (page_workers(1), page_workers(3)) == (1, 1)
    assert page_workers(PARALLEL_PAGES) == min(2, cpus)
    monkeypatch.setenv("QUANT_PIPELINE_PAGE_WORKERS", str(cpus + 5))
    assert page_workers(40) == cpus
    monkeypatch.setenv("QUANT_PIPELINE_PAGE_WORKERS", "1")
    assert page_workers(40) == 1

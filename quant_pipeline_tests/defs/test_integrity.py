"""The lookahead audit check and the bias labels, materialized on a small demo market."""

import dagster as dg
import polars as pl
import pytest

from quant_pipeline.definitions import asset_checks
from quant_pipeline.defs.integrity import (
    LookaheadAuditConfig,
    scores_match_point_in_time_recomputation,
)
from quant_pipeline.storage.warehouse import Warehouse
from quant_pipeline_tests.defs import chain

resources = chain.resources


@pytest.fixture(scope="module")
def built(demo_chain):
    return demo_chain.path, demo_chain.result


def test_the_definitions_and_the_cli_run_the_audit_check():
    assert scores_match_point_in_time_recomputation in asset_checks


def test_the_audit_check_passes_on_the_demo_market(built):
    _, result = built
    (evaluation,) = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "scores_match_point_in_time_recomputation"
    ]
    assert evaluation.passed
    assert evaluation.metadata["mismatches"].value == 0
    assert evaluation.metadata["rows_compared"].value > 0


def test_every_backtest_has_its_bias_labels_in_the_warehouse_and_the_metadata(built):
    path, result = built
    labels = Warehouse(path).read_table("backtest.labels")
    strategies = set(labels["strategy"])
    assert {"multifactor_smallcap", "magic_formula"} <= strategies
    by_label = dict(
        labels.filter(pl.col("strategy") == "magic_formula").select("label", "value").iter_rows()
    )
    assert by_label["source"] == "demo"
    assert by_label["universe"] == "membership:demo"
    assert by_label["delisting"].startswith(f"delisting_return {chain.DELISTING_RETURN}")
    assert by_label["costs_bps"] == "10"
    assert by_label["data_vintage"].startswith("first_ingested")
    daily = [
        m
        for m in result.get_asset_materialization_events()
        if m.asset_key == dg.AssetKey(["backtest", "daily"])
    ]
    text = daily[0].materialization.metadata["bias_labels"].value
    assert "survivorship_free" in text and "fundamentals_timing" in text


def test_the_audit_check_fails_naming_date_ticker_and_column_when_a_stored_value_leaks(built):
    path, _ = built
    wh = Warehouse(path)
    values = wh.read_table("factors.values")
    last = values["rebalance_date"].max()
    target = values.filter(
        (pl.col("rebalance_date") == last) & pl.col("volatility").is_not_null()
    ).sort("ticker")["ticker"][0]
    planted = values.with_columns(
        volatility=pl.when((pl.col("rebalance_date") == last) & (pl.col("ticker") == target))
        .then(pl.col("volatility") + 0.5)
        .otherwise(pl.col("volatility"))
    )
    wh.replace_table("factors.values", planted)
    try:
        outcome = scores_match_point_in_time_recomputation(
            LookaheadAuditConfig(sample_dates=2),
            market=resources(path)["market"],
            warehouse=resources(path)["warehouse"],
        )
    finally:
        wh.replace_table("factors.values", values)
    assert not outcome.passed
    assert f"factors.values on {last} ticker {target} column volatility" in outcome.description


def test_share_basis_events_and_suspect_moves_are_tables_and_labels(built):
    path, _ = built
    wh = Warehouse(path)
    events = wh.read_table("curated.share_basis_events")
    splits = wh.read_table("raw.corporate_actions").filter(pl.col("action") == "split")
    on_file = events.filter(pl.col("method") == "corporate_action")
    assert on_file.height == splits.height >= 1
    assert set(on_file["price_basis"]) == {"as_traded"}
    assert wh.has_table("curated.suspect_moves")
    by_label = dict(
        wh.read_table("backtest.labels")
        .filter(pl.col("strategy") == "magic_formula")
        .select("label", "value")
        .iter_rows()
    )
    assert by_label["share_basis"].startswith(f"rebased: {events.height} splits")
    assert "suspect_moves" in by_label

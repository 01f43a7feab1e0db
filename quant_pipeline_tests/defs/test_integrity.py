"""The lookahead audit check and the bias labels, materialized on a small demo market."""

import shutil

import dagster as dg
import polars as pl
import pytest

from quant_pipeline.core.data.fingerprints import KEPT
from quant_pipeline.definitions import all_assets, asset_checks
from quant_pipeline.defs.integrity import (
    AUDIT_RECORD,
    AUDIT_RECORD_SCHEMA,
    AUDITED,
    RECORD_KEY,
    LookaheadAuditConfig,
    scores_match_point_in_time_recomputation,
)
from quant_pipeline.defs.resources import WarehouseResource
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


def test_the_audit_check_fails_naming_date_ticker_and_column_when_a_stored_value_leaks(
    built, tmp_path
):
    path = tmp_path / "quant.duckdb"  # a copy: the check writes its record
    shutil.copyfile(built[0], path)
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
    outcome = scores_match_point_in_time_recomputation(
        dg.build_asset_check_context(),
        LookaheadAuditConfig(sample_dates=2),
        market=resources(path)["market"],
        warehouse=resources(path)["warehouse"],
    )
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


def _audit(instance, path, **market_fields):
    """The audit check alone, as a run in ``instance``: its evaluation."""
    result = dg.materialize(
        [*all_assets, *asset_checks],
        selection=dg.AssetSelection.checks_for_assets(dg.AssetKey(["factors", "scores"])),
        resources={
            "warehouse": WarehouseResource(path=str(path)),
            "market": chain.market(**market_fields),
        },
        instance=instance,
        raise_on_error=False,
    )
    (evaluation,) = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "scores_match_point_in_time_recomputation"
    ]
    return evaluation


def _record(evaluation) -> pl.DataFrame:
    rows = evaluation.metadata[AUDIT_RECORD].value
    return pl.DataFrame(
        rows, orient="row", schema=list(AUDIT_RECORD_SCHEMA), infer_schema_length=None
    )


def test_keys_audited_before_on_the_same_inputs_are_kept_and_the_rest_audited(built, tmp_path):
    """The check's evaluation records what it compared (``audit_record``); the next evaluation
    in the same Dagster instance keeps every key whose inputs and stored rows did not change; a
    stored score changed in place is audited again (alone) and caught; with incremental off
    every key is audited. A new instance (no history) audits everything."""
    path = tmp_path / "quant.duckdb"
    shutil.copyfile(built[0], path)
    wh = Warehouse(path)
    with dg.DagsterInstance.ephemeral() as instance:
        first = _audit(instance, path)
        assert first.passed
        record = _record(first)
        n = record.height
        assert set(record["table"]) == {"factors.values", "factors.scores"}
        assert record["mismatches"].sum() == 0 and record["rows_compared"].min() > 0
        dates = record.filter(pl.col("table") == "factors.values")["rebalance_date"]
        assert dates.len() == LookaheadAuditConfig().sample_dates
        assert first.metadata["incremental"].value == {AUDITED: n}
        assert first.metadata["rows_compared"].value == record["rows_compared"].sum()

        again = _audit(instance, path)
        assert again.passed
        assert again.metadata["incremental"].value == {KEPT: n}
        assert again.metadata["rows_compared"].value == 0
        assert f"{n} key(s) kept" in again.description
        assert _record(again).equals(record)  # kept rows stay as they were, dates included

        # a stored score changed in place (its input digest unchanged) is audited again
        key = record.filter(pl.col("table") == "factors.scores").sort(RECORD_KEY).row(0, named=True)
        scores = wh.read_table("factors.scores")
        on = (pl.col("strategy") == key["strategy"]) & (
            pl.col("rebalance_date").cast(pl.String) == key["rebalance_date"]
        )
        wh.replace_table(
            "factors.scores",
            scores.with_columns(score=pl.when(on).then(pl.col("score") + 1.0).otherwise("score")),
        )
        caught = _audit(instance, path)
        assert not caught.passed
        assert caught.metadata["incremental"].value == {KEPT: n - 1, AUDITED: 1}
        assert caught.metadata["rows_compared"].value == key["rows_compared"]
        where = f"factors.scores [{key['strategy']}] on {key['rebalance_date']}"
        assert where in caught.description
        # the failed key is never kept: restored, it is audited again and passes
        wh.replace_table("factors.scores", scores)
        mended = _audit(instance, path)
        assert mended.passed
        assert mended.metadata["incremental"].value == {KEPT: n - 1, AUDITED: 1}

        full = _audit(instance, path, incremental=False)
        assert full.metadata["incremental"].value == {AUDITED: n}
    with dg.DagsterInstance.ephemeral() as fresh:
        assert _audit(fresh, path).metadata["incremental"].value == {AUDITED: n}


def test_without_digest_tables_the_audit_compares_everything(built, tmp_path):
    """A warehouse whose factor tables predate their digest tables is audited whole (and
    records nothing it could keep)."""
    path = tmp_path / "quant.duckdb"
    shutil.copyfile(built[0], path)
    wh = Warehouse(path)
    with wh.connect() as con:
        con.execute("DROP TABLE factors.values_inputs")
    with dg.DagsterInstance.ephemeral() as instance:
        for _ in range(2):
            evaluation = _audit(instance, path)
            assert evaluation.passed
            reasons = evaluation.metadata["incremental"].value
            assert (
                set(reasons) == {AUDITED} and reasons[AUDITED] > LookaheadAuditConfig().sample_dates
            )
            assert evaluation.metadata["rows_compared"].value > 0
            assert _record(evaluation).is_empty()

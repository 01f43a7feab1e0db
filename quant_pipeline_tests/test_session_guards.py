"""The session-wide guards of ``conftest.py``: a pinned demo market and an untouched project."""

import os
from pathlib import Path

from quant_pipeline.settings import from_env
from quant_pipeline.sources import make_source
from quant_pipeline.sources.base import FetchRequest
from quant_pipeline_tests.conftest import PROJECT_ROOT, listing_changes, tree_listing
from quant_pipeline_tests.pins import DEMO_END


def test_the_demo_market_built_from_the_environment_ends_on_the_pinned_day():
    settings = from_env()
    assert settings.demo_end == DEMO_END
    source = make_source(settings.with_(demo_tickers=5, demo_start=DEMO_END.replace(month=1)))
    assert source.prices(FetchRequest())["date"].max() == DEMO_END  # a Friday, a trading day


def test_dagster_home_is_a_temporary_folder_outside_the_project():
    home = Path(os.environ["DAGSTER_HOME"]).resolve()
    assert home.is_dir()
    assert PROJECT_ROOT not in home.parents


def test_the_listing_check_names_added_changed_and_removed_files(tmp_path):
    (tmp_path / "warehouse").mkdir()
    (tmp_path / "dagster_home").mkdir()
    kept = tmp_path / "dagster_home" / "dagster.yaml"
    kept.write_text("telemetry: {}\n")
    gone = tmp_path / "warehouse" / "old.duckdb"
    gone.write_bytes(b"x")
    before = tree_listing(tmp_path)
    assert listing_changes(before, tree_listing(tmp_path)) == []

    gone.unlink()
    (tmp_path / "warehouse" / "quant.duckdb").write_bytes(b"db")
    kept.write_text("telemetry: {enabled: false}\n")
    assert listing_changes(before, tree_listing(tmp_path)) == [
        "added warehouse/quant.duckdb",
        "removed warehouse/old.duckdb",
        "changed dagster_home/dagster.yaml",
    ]

"""The reports directory setting (QUANT_PIPELINE_REPORTS_DIR)."""

from pathlib import Path

from quant_pipeline.settings import from_env


def test_reports_dir_defaults_to_reports_and_follows_the_env_var():
    assert from_env({}).reports_dir == Path("reports")
    assert from_env({"QUANT_PIPELINE_REPORTS_DIR": "/tmp/sheets"}).reports_dir == Path(
        "/tmp/sheets"
    )

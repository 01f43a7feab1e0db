"""The reports directory and risk-free rate settings (QUANT_PIPELINE_REPORTS_DIR, ..._RATE)."""

from pathlib import Path

import pytest

from quant_pipeline.settings import SettingsError, from_env


def test_reports_dir_defaults_to_reports_and_follows_the_env_var():
    assert from_env({}).reports_dir == Path("reports")
    assert from_env({"QUANT_PIPELINE_REPORTS_DIR": "/tmp/sheets"}).reports_dir == Path(
        "/tmp/sheets"
    )


def test_the_risk_free_rate_defaults_to_zero_and_follows_the_env_var():
    assert from_env({}).risk_free_rate == 0.0
    assert from_env({"QUANT_PIPELINE_RISK_FREE_RATE": "0.02"}).risk_free_rate == 0.02
    with pytest.raises(SettingsError, match="QUANT_PIPELINE_RISK_FREE_RATE='two' is not a number"):
        from_env({"QUANT_PIPELINE_RISK_FREE_RATE": "two"})
    with pytest.raises(SettingsError, match="as a fraction"):
        from_env({"QUANT_PIPELINE_RISK_FREE_RATE": "2"})  # 2 means 200%, not 2%

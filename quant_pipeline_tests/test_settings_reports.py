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
    with pytest.raises(SettingsError, match="QUANT_PIPELINE_RISK_FREE_RATE: must be a number"):
        from_env({"QUANT_PIPELINE_RISK_FREE_RATE": "two"})
    with pytest.raises(SettingsError, match="RISK_FREE_RATE: must be an annual rate as a fraction"):
        from_env({"QUANT_PIPELINE_RISK_FREE_RATE": "2"})  # 2 means 200%, not 2%


def test_the_run_flag_sets_the_metrics_assets_risk_free_rate(monkeypatch, tmp_path):
    # the flag reaches backtest/metrics as its run config, not through the process environment
    from quant_pipeline.app import cli

    seen = {}

    def fake_materialize(assets, resources, instance, raise_on_error, run_config, tags=None):
        seen.update(run_config)
        raise SystemExit(0)

    import dagster as dg

    monkeypatch.setattr(dg, "materialize", fake_materialize)
    monkeypatch.delenv("QUANT_PIPELINE_RISK_FREE_RATE", raising=False)
    monkeypatch.delenv("QUANT_PIPELINE_COMMON_WINDOW_TOLERANCE_DAYS", raising=False)
    with pytest.raises(SystemExit):
        cli.main(["run", "--risk-free-rate", "0.02", "--warehouse", str(tmp_path / "w.duckdb")])
    assert seen["ops"]["backtest__metrics"]["config"] == {
        "risk_free_rate": 0.02,
        "common_window_tolerance_days": 365,
    }


def test_the_run_flag_sets_the_common_window_tolerance_of_the_metrics_asset(monkeypatch, tmp_path):
    from quant_pipeline.app import cli

    seen = {}

    def fake_materialize(assets, resources, instance, raise_on_error, run_config, tags=None):
        seen.update(run_config)
        raise SystemExit(0)

    import dagster as dg

    monkeypatch.setattr(dg, "materialize", fake_materialize)
    args = ["run", "--common-window-tolerance-days", "90", "--warehouse", str(tmp_path / "w")]
    with pytest.raises(SystemExit):
        cli.main(args)
    assert seen["ops"]["backtest__metrics"]["config"]["common_window_tolerance_days"] == 90
    with pytest.raises(SettingsError, match="must be a whole number of days >= 0"):
        from_env({"QUANT_PIPELINE_COMMON_WINDOW_TOLERANCE_DAYS": "-1"})

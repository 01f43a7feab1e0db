"""The Settings model: one definition behind env vars, resource config, CLI flags and the docs."""

import os
from datetime import date
from pathlib import Path

import pytest

from quant_pipeline.app import cli
from quant_pipeline.config.docs import DOC_FILES, ROOT, render
from quant_pipeline.defs.resources import SETTINGS_FIELDS, MarketDataResource, WarehouseResource
from quant_pipeline.settings import Settings, SettingsError, env_var, from_env

# raw env value -> parsed value, one per field: a new field without a sample fails the first test
SAMPLES = {
    "warehouse": ("/tmp/w.duckdb", Path("/tmp/w.duckdb")),
    "source": ("Yahoo", "yahoo"),
    "data_dir": ("/data", Path("/data")),
    "universe": ("tickers.csv", Path("tickers.csv")),
    "demo_tickers": ("7", 7),
    "demo_start": ("2015-01-02", date(2015, 1, 2)),
    "demo_seed": ("3", 3),
    "demo_end": ("2016-01-04", date(2016, 1, 4)),
    "strategies": ("magic_formula, momentum_12_1,", ("magic_formula", "momentum_12_1")),
    "incremental": ("false", False),
    "stale_after_sessions": ("4", 4),
    "reports_dir": ("/tmp/sheets", Path("/tmp/sheets")),
    "risk_free_rate": ("0.02", 0.02),
    "common_window_tolerance_days": ("90", 90),
    "sweep_workers": ("1", 1),
    "page_workers": ("1", 1),
    "outbox": ("/tmp/out", Path("/tmp/out")),
    "inbox": ("/tmp/in", Path("/tmp/in")),
    "portfolios": ("mine.yaml", Path("mine.yaml")),
    "dagster_home": ("/tmp/dh", Path("/tmp/dh")),  # read from DAGSTER_HOME, Dagster's own
}


@pytest.fixture
def clean_env(monkeypatch):
    for key in list(os.environ):
        if key.startswith("QUANT_PIPELINE_"):
            monkeypatch.delenv(key)
    return monkeypatch


def test_every_settings_field_is_read_from_its_quant_pipeline_env_var():
    assert set(SAMPLES) == set(Settings.model_fields)
    for name, (raw, value) in SAMPLES.items():
        assert getattr(from_env({env_var(name): raw}), name) == value, name
    assert from_env({}) == Settings()
    assert from_env({"QUANT_PIPELINE_DEMO_TICKERS": "  "}).demo_tickers == 500


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"QUANT_PIPELINE_SOURCE": "yahooo"},
            "QUANT_PIPELINE_SOURCE: unknown value 'yahooo'; allowed: ['demo', 'yahoo', 'files']",
        ),
        ({"QUANT_PIPELINE_DEMO_TICKERS": "ten"}, "QUANT_PIPELINE_DEMO_TICKERS: must be a whole"),
        ({"QUANT_PIPELINE_DEMO_TICKERS": "0"}, "QUANT_PIPELINE_DEMO_TICKERS: must be >= 1, got 0"),
        (
            {"QUANT_PIPELINE_SWEEP_WORKERS": "0"},
            "QUANT_PIPELINE_SWEEP_WORKERS: must be >= 1, got 0",
        ),
        (
            {"QUANT_PIPELINE_PAGE_WORKERS": "0"},
            "QUANT_PIPELINE_PAGE_WORKERS: must be >= 1, got 0",
        ),
        ({"QUANT_PIPELINE_DEMO_START": "2015-13-01"}, "QUANT_PIPELINE_DEMO_START: must be a date"),
        (
            {"QUANT_PIPELINE_DEMO_END": "2009-12-31"},
            "QUANT_PIPELINE_DEMO_END=2009-12-31 must be after QUANT_PIPELINE_DEMO_START",
        ),
        ({"QUANT_PIPELINE_SOURCE": "files"}, "needs QUANT_PIPELINE_DATA_DIR"),
    ],
)
def test_a_bad_value_names_the_env_var_the_rule_and_the_allowed_values(env, message):
    with pytest.raises(SettingsError) as err:
        from_env(env)
    assert message in str(err.value)


def test_market_resource_fields_are_overrides_validated_by_the_same_model(clean_env):
    assert set(SETTINGS_FIELDS) <= set(Settings.model_fields)
    assert set(SETTINGS_FIELDS) <= set(MarketDataResource.model_fields)
    clean_env.setenv("QUANT_PIPELINE_DEMO_TICKERS", "99")
    assert MarketDataResource().settings().demo_tickers == 99
    assert MarketDataResource(demo_tickers=7).settings().demo_tickers == 7
    assert MarketDataResource(strategies=["a", "b"]).settings().strategies == ("a", "b")
    with pytest.raises(SettingsError, match=r"resource config demo_end \(QUANT_PIPELINE_DEMO_END"):
        MarketDataResource(demo_end="2024-02-30").settings()
    assert WarehouseResource(path="/tmp/x.duckdb").get().path == Path("/tmp/x.duckdb")


def test_cli_run_flags_become_settings_and_resource_config_never_env_vars(clean_env, tmp_path):
    seen = {}

    def fake_run(resources, log_level, settings):
        seen["settings"] = settings
        return 0

    clean_env.setattr(cli, "run_pipeline", fake_run)
    before = dict(os.environ)
    argv = ["run", "--tickers", "7", "--end", "2020-06-30", "--strategies", "magic_formula"]
    assert cli.main([*argv, "--warehouse", str(tmp_path / "w.duckdb")]) == 0
    assert dict(os.environ) == before
    settings = seen["settings"]
    assert (settings.demo_tickers, settings.demo_end) == (7, date(2020, 6, 30))
    assert (settings.strategies, settings.warehouse) == (("magic_formula",), tmp_path / "w.duckdb")
    # the resources the run gets reproduce these settings whatever the environment says
    clean_env.setenv("QUANT_PIPELINE_DEMO_TICKERS", "99")
    resources = cli.settings_resources(settings)
    pinned = set(SETTINGS_FIELDS)
    assert resources["market"].settings().model_dump(include=pinned) == settings.model_dump(
        include=pinned
    )
    assert resources["warehouse"].path == str(tmp_path / "w.duckdb")


def test_a_bad_flag_value_exits_2_naming_the_flag(clean_env, capsys):
    assert cli.main(["run", "--tickers", "ten"]) == 2
    assert (
        "--tickers (QUANT_PIPELINE_DEMO_TICKERS): must be a whole number" in capsys.readouterr().err
    )


def test_every_run_flag_comes_from_a_settings_field():
    flags = {
        name: (info.json_schema_extra or {}).get("flag")
        for name, info in Settings.model_fields.items()
    }
    assert {n: f for n, f in flags.items() if f} == {
        "warehouse": "--warehouse",
        "source": "--source",
        "data_dir": "--data-dir",
        "universe": "--universe",
        "demo_tickers": "--tickers",
        "demo_start": "--start",
        "demo_seed": "--seed",
        "demo_end": "--end",
        "strategies": "--strategies",
        "risk_free_rate": "--risk-free-rate",
        "common_window_tolerance_days": "--common-window-tolerance-days",
    }


@pytest.mark.parametrize("name", DOC_FILES)
def test_the_generated_tables_in_the_docs_match_the_models(name):
    text = (ROOT / name).read_text(encoding="utf-8")
    assert render(text) == text, f"run: python -m quant_pipeline.config.docs ({name} drifted)"

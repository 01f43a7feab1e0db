"""A folder with prices only (the S&P 500 folder without fundamentals.csv and securities.csv)
runs end to end: the price strategies have results, the others are skipped with the reason."""

import contextlib
import io
import shutil

import pytest

from quant_pipeline.app.cli import main
from quant_pipeline.storage.warehouse import Warehouse


@pytest.fixture(scope="module")
def price_only_run(sp500_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("price_only")
    folder = root / "data"
    folder.mkdir()
    for name in ("prices.csv.gz", "sp500_membership.csv"):
        shutil.copy(sp500_dir / name, folder / name)
    env = {
        "QUANT_PIPELINE_WAREHOUSE": str(root / "quant.duckdb"),
        "QUANT_PIPELINE_REPORTS_DIR": str(root / "reports"),
        # set here, not as options: main() writes options into os.environ, which would leak
        "QUANT_PIPELINE_SOURCE": "files",
        "QUANT_PIPELINE_DATA_DIR": str(folder),
        "QUANT_PIPELINE_STRATEGIES": "momentum_12_1,low_volatility,magic_formula",
    }
    mp = pytest.MonkeyPatch()
    for key, value in env.items():
        mp.setenv(key, value)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run"])
    mp.undo()
    return code, out.getvalue(), Warehouse(root / "quant.duckdb")


def test_the_price_only_folder_runs_and_says_which_strategies_were_skipped_and_why(
    price_only_run,
):
    code, output, _ = price_only_run
    assert code == 0
    assert "Skipped 1 strategies (missing inputs or profile fields):" in output
    assert "magic_formula: needs fundamentals (curated.fundamentals is empty)" in output
    assert "low_volatility" in output and "momentum_12_1" in output and "benchmark" in output


def test_price_strategies_and_the_equal_weight_benchmark_have_results(price_only_run):
    _, _, warehouse = price_only_run
    comparison = warehouse.read_table("backtest.comparison")
    skipped = comparison["flags"].fill_null("").str.starts_with("never fired (not backtested)")
    assert set(comparison.filter(~skipped)["strategy"]) == {"momentum_12_1", "low_volatility"}
    assert "magic_formula" in set(comparison.filter(skipped)["strategy"])  # a row saying why
    common = set(warehouse.read_table("backtest.comparison_common_window")["strategy"])
    assert common == {"momentum_12_1", "low_volatility", "benchmark"}
    benchmarks = warehouse.read_table("backtest.benchmarks")
    primary = benchmarks.filter(benchmarks["is_primary"])["benchmark"].unique().to_list()
    assert primary == ["equal_weight"]


def test_skips_and_dropped_sector_caps_are_backtest_labels(price_only_run):
    _, _, warehouse = price_only_run
    labels = warehouse.read_table("backtest.labels")
    skipped = labels.filter(labels["label"] == "skipped")
    assert skipped["strategy"].to_list() == ["magic_formula"]
    assert "exclude_sectors" in skipped["value"][0]
    caps = labels.filter(labels["label"] == "sector_cap")
    assert sorted(caps["strategy"]) == ["low_volatility", "momentum_12_1"]


def test_without_profiles_every_sector_is_unknown_and_portfolios_are_full(price_only_run):
    _, _, warehouse = price_only_run
    assert warehouse.row_count("curated.securities") == 0
    sectors = warehouse.read_table("factors.values", columns=["sector"])["sector"]
    assert sectors.null_count() == sectors.len()  # stored null, shown as "Unknown" in reports
    report = warehouse.read_table("portfolio.constraint_report")
    # no sectors: the 30% cap is dropped (it would squeeze all names into one bucket of 9), so
    # every rebalance with a year of history holds its 30 names
    assert set(report["n_selected"]) == {0, 30}
    assert report.filter(report["n_selected"] > 0)["cap_met"].all()

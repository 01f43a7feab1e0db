"""Live-portfolio health checks on the tiny market: 100 A + 50 E held (see tiny_market)."""

import dagster as dg
import pytest

from quant_pipeline.defs.health import health_assets, health_checks
from quant_pipeline.defs.orders import orders_packets
from quant_pipeline.storage.warehouse import Warehouse
from quant_pipeline_tests.defs.tiny_market import build_warehouse, materialize, resources


@pytest.fixture
def held(tmp_path, monkeypatch):
    """The warehouse after an orders run on the holdings file 100 A + 50 E."""
    monkeypatch.setenv("QUANT_PIPELINE_PORTFOLIOS", str(tmp_path / "portfolios.yaml"))
    monkeypatch.setenv("QUANT_PIPELINE_OUTBOX", str(tmp_path / "outbox"))
    path = tmp_path / "quant.duckdb"
    build_warehouse(path)
    holdings = tmp_path / "mine.csv"
    holdings.write_text("ticker,shares\nA,100\nE,50\n")
    config = {
        "portfolio": "mine",
        "strategy": "magic_formula",
        "holdings_file": str(holdings),
        "as_of": "2024-03-28",
    }
    assert materialize([orders_packets], path, config).success
    return path


def _health(path):
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [*health_assets, *health_checks], resources=resources(path), instance=instance
        )
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_holdings_value_marks_the_live_holdings_to_market_every_day(held):
    _health(held)
    value = Warehouse(held).read_table("orders.holdings_value").sort("date")
    # 100 A at 160, 200, 170, 150 + 50 E at 20
    assert value["value"].to_list() == [17000.0, 21000.0, 18000.0, 16000.0]
    assert value["peak"].to_list() == [17000.0, 21000.0, 21000.0, 21000.0]
    assert value["drawdown"][-1] == pytest.approx(16000 / 21000 - 1)  # -23.81%


def test_a_drawdown_deeper_than_the_limit_fails_with_the_numbers(held):
    check = _health(held)["drawdown_within_limit"]
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.ERROR
    [breach] = check.metadata["breach_details"].value
    assert breach["portfolio"] == "mine"
    assert breach["value"] == 16000.0
    assert breach["peak"] == 21000.0
    assert breach["drawdown"] == pytest.approx(-0.238095, abs=1e-6)
    assert breach["max_drawdown"] == 0.20


def test_sector_and_position_over_their_caps_fail_with_the_weights(held):
    checks = _health(held)
    sector = checks["sector_weight_within_cap"]
    assert not sector.passed
    # A (Information Technology) 15,000 of 16,000 = 93.75% > 40%; Energy 6.25% is fine
    [breach] = sector.metadata["breach_details"].value
    assert breach["sector"] == "Information Technology"
    assert breach["weight"] == pytest.approx(0.9375)
    assert breach["max_sector_weight"] == 0.40
    position = checks["position_weight_within_cap"]
    assert not position.passed
    [breach] = position.metadata["breach_details"].value
    assert (breach["ticker"], breach["weight"], breach["max_position_weight"]) == (
        "A",
        pytest.approx(0.9375),
        0.25,
    )


def test_limits_from_portfolios_yaml_that_the_portfolio_meets_pass(held, tmp_path):
    (tmp_path / "portfolios.yaml").write_text(
        "portfolios:\n  mine:\n    health:\n      max_drawdown: 0.25\n"
        "      max_sector_weight: 0.95\n      max_position_weight: 0.95\n"
    )
    checks = _health(held)
    assert all(c.passed for c in checks.values()), {
        n: c.metadata["breach_table"] for n, c in checks.items()
    }
    assert checks["drawdown_within_limit"].metadata["current_drawdown"].value == {
        "mine": pytest.approx(-0.238095, abs=1e-6)
    }


def test_no_live_portfolio_means_every_check_passes_with_nothing_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("QUANT_PIPELINE_PORTFOLIOS", str(tmp_path / "portfolios.yaml"))
    path = tmp_path / "quant.duckdb"
    build_warehouse(path)
    checks = _health(path)
    assert all(c.passed for c in checks.values())
    assert checks["drawdown_within_limit"].metadata["portfolios_checked"].value == []

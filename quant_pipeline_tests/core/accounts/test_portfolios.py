"""portfolios.yaml: defaults, overrides, relative holdings paths and every error named."""

from pathlib import Path

import pytest

from quant_pipeline.config.portfolios import load_portfolios
from quant_pipeline.core.accounts.portfolios import (
    HealthLimits,
    PortfoliosConfigError,
    parse_portfolios,
    portfolio_name,
)


def test_portfolios_inherit_the_defaults_and_override_them(tmp_path):
    path = tmp_path / "portfolios.yaml"
    path.write_text(
        "defaults:\n  strategy: magic_formula\n  min_trade_value: 50\n"
        "  health: {max_drawdown: 0.3}\n"
        "portfolios:\n"
        "  a: {capital: 1000}\n"
        "  b: {holdings: inbox/b.csv, strategy: multifactor_smallcap,\n"
        "      health: {lookback_days: 60}}\n"
    )
    config = load_portfolios(path)
    a, b = config.portfolios["a"], config.portfolios["b"]
    assert (a.strategy, a.capital, a.min_trade_value) == ("magic_formula", 1000.0, 50.0)
    assert a.health == HealthLimits(max_drawdown=0.3)
    assert b.strategy == "multifactor_smallcap"
    assert b.holdings == str(tmp_path.resolve() / "inbox" / "b.csv")
    assert b.health.lookback_days == 60 and b.health.max_drawdown == 0.3
    assert config.by_holdings_file(tmp_path / "inbox" / "b.csv").name == "b"
    unknown = config.get("zzz")
    assert (unknown.name, unknown.strategy, unknown.capital) == ("zzz", "magic_formula", None)


def test_overrides_apply_only_the_values_given():
    spec = parse_portfolios({"portfolios": {"a": {"capital": 10}}}).portfolios["a"]
    changed = spec.with_overrides(capital=None, fractional=True, cash=5.0)
    assert (changed.capital, changed.fractional, changed.cash) == (10.0, True, 5.0)


def test_a_missing_file_means_no_portfolios_unless_required(tmp_path):
    assert load_portfolios(tmp_path / "none.yaml").portfolios == {}
    with pytest.raises(PortfoliosConfigError, match="does not exist"):
        load_portfolios(tmp_path / "none.yaml", required=True)


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        ({"portfolio": {}}, "portfolio: unknown field"),
        ({"portfolios": {"a": {"captial": 5}}}, "portfolios.a.captial: unknown field"),
        ({"portfolios": {"a": {"capital": -5}}}, "portfolios.a.capital: must not be negative"),
        ({"portfolios": {"a": {"capital": "lots"}}}, "portfolios.a.capital: must be a number"),
        ({"portfolios": {"a": {"fractional": "yes"}}}, "must be true or false"),
        ({"portfolios": {"bad name": {}}}, "portfolios.bad name: name must match"),
        ({"defaults": {"health": {"max_sector_weight": 1.5}}}, "must be at most 1.0"),
        ({"defaults": {"max_price_age_days": 2.5}}, "must be a whole number"),
    ],
)
def test_every_schema_error_names_the_file_and_the_field(doc, where):
    with pytest.raises(PortfoliosConfigError) as info:
        parse_portfolios(doc, "p.yaml")
    assert str(info.value).startswith("p.yaml: ")
    assert where in str(info.value)


def test_file_stems_become_usable_portfolio_names():
    assert portfolio_name("my portfolio (2)") == "my_portfolio_2"
    assert portfolio_name("family.ira") == "family.ira"
    assert portfolio_name("***") == "portfolio"


def test_the_shipped_example_file_loads():
    config = load_portfolios(Path(__file__).resolve().parents[3] / "portfolios.yaml", required=True)
    assert config.portfolios["example_50k"].capital == 50000.0


def test_an_unknown_key_lists_the_allowed_keys_and_health_is_checked_key_by_key():
    with pytest.raises(PortfoliosConfigError) as info:
        parse_portfolios({"portfolios": {"a": {"captial": 5}}}, "p.yaml")
    assert str(info.value) == (
        "p.yaml: portfolios.a.captial: unknown field; allowed: ['strategy', 'theme', 'stocks', "
        "'capital', 'holdings', 'cash', 'fractional', 'min_trade_value', 'sell_unlisted', "
        "'commission', 'max_price_age_days', 'weight_change_threshold', 'health']"
    )
    with pytest.raises(PortfoliosConfigError, match=r"portfolios.a.health.lookbak: unknown field"):
        parse_portfolios({"portfolios": {"a": {"health": {"lookbak": 5}}}}, "p.yaml")

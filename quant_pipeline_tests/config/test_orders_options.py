"""OrdersOptions: the one model behind the orders asset's run config and the CLI flags."""

import argparse

import pytest
from pydantic import ValidationError

from quant_pipeline.config.orders import OrdersOptions, add_orders_arguments, options_from_args
from quant_pipeline.core.accounts.portfolios import PortfoliosConfigError, PortfolioSpec
from quant_pipeline.defs.orders import OrdersConfig


def parse(*argv: str) -> OrdersOptions:
    parser = argparse.ArgumentParser()
    add_orders_arguments(parser)
    return options_from_args(parser.parse_args(argv))


def test_the_run_config_has_exactly_the_options_fields():
    assert list(OrdersConfig.model_fields) == list(OrdersOptions.model_fields)


def test_cli_flags_parse_into_the_options_and_override_portfolio_fields():
    options = parse(
        "--holdings", "h.csv", "--keep-unlisted", "--no-commission", "--fractional",
        "--min-trade", "50", "--max-price-age", "3", "--as-of", "2024-03-28", "--cash", "10",
    )  # fmt: skip
    assert options.as_of_date.isoformat() == "2024-03-28"
    assert options.portfolio == "default"
    overrides = options.portfolio_overrides()
    assert set(overrides) <= set(PortfolioSpec.model_fields)
    assert {k: v for k, v in overrides.items() if v is not None} == {
        "holdings": "h.csv",
        "sell_unlisted": False,
        "commission": False,
        "fractional": True,
        "min_trade_value": 50.0,
        "max_price_age_days": 3,
        "cash": 10.0,
    }
    spec = PortfolioSpec(name="a", capital=5.0).with_overrides(**overrides)
    assert (spec.capital, spec.holdings, spec.sell_unlisted, spec.cash) == (5.0, "h.csv", False, 10)
    assert parse().portfolio_overrides() == dict.fromkeys(overrides)


def test_bad_options_name_the_field():
    with pytest.raises(ValidationError, match="capital"):
        parse("--capital", "-5")
    with pytest.raises(ValidationError, match="as_of '2024-13-01' is not a date"):
        OrdersOptions(as_of="2024-13-01")


def test_overrides_are_validated_by_the_portfolio_model():
    with pytest.raises(PortfoliosConfigError) as err:
        PortfolioSpec(name="a").with_overrides("run config", max_price_age_days=-1)
    assert str(err.value) == "run config: max_price_age_days: must not be negative, got -1"

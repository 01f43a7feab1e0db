"""The trading model a strategy is backtested with: run config, then the strategy's overrides."""

import copy
import math

import dagster as dg
import pytest

from quant_pipeline.core.strategies.spec import parse_strategy
from quant_pipeline.defs.trading import BacktestConfig, model_settings, trading_model
from quant_pipeline_tests.core.strategies.test_spec import BASE


def spec_with(trading=None, bps=0.0):
    doc = copy.deepcopy(BASE)
    doc["costs"] = {"bps": bps}
    if trading is not None:
        doc["trading"] = trading
    return parse_strategy(doc, "tiny.yaml")


def test_defaults_are_100k_whole_shares_and_ib_fixed_commissions():
    model = trading_model(BacktestConfig(), spec_with())
    assert model.capital == 100_000.0 and not model.fractional
    c = model.commission
    assert (c.per_share, c.minimum, c.maximum_pct, c.bps, c.slippage_bps) == (
        0.005,
        1.0,
        0.01,
        0.0,
        0.0,
    )
    assert model.cash_rate == 0.0


def test_strategy_trading_section_overrides_run_config_and_costs_bps_adds_to_slippage():
    config = BacktestConfig(capital=50_000, slippage_bps=2.0, cash_rate=0.01)
    model = trading_model(config, spec_with({"capital": 20_000, "slippage_bps": 5}, bps=10))
    assert model.capital == 20_000.0  # the strategy wins
    assert model.commission.slippage_bps == 15.0  # its 5 bps + costs.bps 10
    assert model.cash_rate == 0.01  # not overridden: the run's value
    assert trading_model(config, spec_with(bps=10)).commission.slippage_bps == 12.0


def test_settings_row_records_the_model_with_no_cap_as_minus_one():
    model = trading_model(BacktestConfig(commission_maximum_pct=-1), spec_with())
    assert math.isinf(model.commission.maximum_pct)
    row = model_settings(model).row(0, named=True)
    assert row["commission_maximum_pct"] == -1.0 and row["capital"] == 100_000.0


def test_impossible_settings_fail_the_step_naming_the_strategy():
    with pytest.raises(dg.Failure, match="strategy 'tiny'.*capital must be positive"):
        trading_model(BacktestConfig(capital=0), spec_with())


def test_signal_and_staggered_kinds_keep_held_names_and_factor_kinds_resize_outside_the_band():
    from quant_pipeline.config.strategies import load_strategies

    specs = load_strategies()
    config = BacktestConfig()
    assert not trading_model(config, specs["canslim"]).resize_held  # signal
    assert not trading_model(config, specs["magic_formula_staggered"]).resize_held  # staggered
    factor = trading_model(config, specs["magic_formula"])
    assert factor.resize_held and factor.tolerance_band == 0.2
    # The commission-aware minimum: IB's $1 minimum is 0.5% of a $200 order.
    assert factor.min_trade_value == 200.0
    forced = trading_model(BacktestConfig(resize_held=True), specs["canslim"])
    assert forced.resize_held
    row = model_settings(forced).row(0, named=True)
    assert (row["tolerance_band"], row["min_trade_value"], row["resize_held"]) == (0.2, 200.0, True)
    exact = trading_model(BacktestConfig(min_trade_value=0.0, tolerance_band=0.0), specs["canslim"])
    assert (exact.min_trade_value, exact.tolerance_band) == (0.0, 0.0)


def test_a_strategy_file_sets_its_band_minimum_and_resizing():
    spec = spec_with({"tolerance_band": 0.1, "min_trade_value": 500, "resize_held": False})
    model = trading_model(BacktestConfig(), spec)
    assert (model.tolerance_band, model.min_trade_value, model.resize_held) == (0.1, 500.0, False)
    from quant_pipeline.core.strategies.spec import StrategyConfigError

    with pytest.raises(StrategyConfigError, match="trading.tolerance_band"):
        spec_with({"tolerance_band": -0.1})

"""Strategy kinds staggered, signal and blend: parsing, and errors that name file, field and
allowed values."""

import copy
from pathlib import Path

import pytest
import yaml

from quant_pipeline.config.strategies import load_strategies, load_strategy
from quant_pipeline.core.factors.values import FACTOR_NAMES
from quant_pipeline.core.strategies.spec import (
    KINDS,
    StrategyConfigError,
    parse_strategy,
    with_blend_sleeves,
)

SIGNAL = {
    "name": "trend",
    "kind": "signal",
    "signal": {
        "name": "trend_following",
        "params": {"fast": 10, "slow": 30},
        "max_positions": 5,
        "stop_loss": 0.08,
    },
    "costs": {"bps": 10},
}
FACTOR = {
    "name": "value",
    "rebalance": "monthly",
    "scoring": {"method": "rank_sum", "factors": {"earnings_yield": None}},
    "portfolio": {"top_n": 4},
}
STAGGERED = {
    **copy.deepcopy(FACTOR),
    "name": "stag",
    "kind": "staggered",
    "portfolio": {"top_n": 6},
    "staggered": {"buy_per_rebalance": 2, "hold_periods": 3},
}
BLEND = {
    "name": "mix",
    "kind": "blend",
    "blend": {"rebalance": "quarterly", "sleeves": {"trend": 0.25, "value": 0.75}},
}


def write(directory: Path, doc: dict) -> Path:
    path = directory / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def error_for(tmp_path: Path, doc: dict) -> StrategyConfigError:
    path = write(tmp_path, doc)
    with pytest.raises(StrategyConfigError) as err:
        load_strategy(path)
    assert err.value.file == str(path)
    return err.value


def test_every_shipped_strategy_loads_with_its_kind():
    specs = load_strategies()
    kinds = {name: spec.kind for name, spec in specs.items()}
    assert kinds == {
        "blend_core": "blend",
        "canslim": "signal",
        "cup_and_handle": "signal",
        "livermore_breakout": "signal",
        "low_volatility": "factor",
        "magic_formula": "factor",
        "magic_formula_lean": "staggered",
        "magic_formula_staggered": "staggered",
        "momentum_12_1": "factor",
        "multifactor_smallcap": "factor",
        "trend_following": "signal",
    }
    staggered = specs["magic_formula_staggered"]
    assert (staggered.staggered.buy_per_rebalance, staggered.staggered.hold_periods) == (2, 12)
    assert staggered.portfolio.top_n == 24 and staggered.rebalance == "monthly"
    assert staggered.universe.screens == (("roa", 0.0, None),)
    assert "US" in staggered.universe.countries
    assert dict(specs["blend_core"].blend.sleeves) == {
        "magic_formula": 0.3,
        "multifactor_smallcap": 0.3,
        "momentum_12_1": 0.2,
        "trend_following": 0.2,
    }


def test_a_signal_strategy_keeps_its_validated_parameters():
    spec = parse_strategy(SIGNAL)
    assert spec.kind == "signal" and spec.rebalance == "daily"
    assert spec.scoring is None and spec.portfolio is None and not spec.scored
    assert spec.signal.param_dict == {"fast": 10, "slow": 30}
    assert (spec.signal.max_positions, spec.signal.stop_loss, spec.signal.sizing) == (
        5,
        0.08,
        "slot",
    )


def test_a_factor_strategy_hash_does_not_see_the_new_optional_fields():
    spec = parse_strategy(FACTOR)
    assert "kind" not in spec.to_dict() and "signal" not in spec.to_dict()
    assert "countries" not in spec.to_dict()["universe"]


def test_unknown_kind_lists_the_kinds(tmp_path):
    err = error_for(tmp_path, {**SIGNAL, "kind": "technical"})
    assert err.field == "kind" and err.allowed == KINDS


def test_unknown_signal_parameter_names_field_and_allowed_parameters(tmp_path):
    doc = copy.deepcopy(SIGNAL)
    doc["signal"]["params"]["fastt"] = 5
    err = error_for(tmp_path, doc)
    assert err.field == "signal.params.fastt"
    assert err.allowed == ("fast", "slow", "atr_n", "atr_stop")


def test_bad_signal_parameter_value_names_the_parameter(tmp_path):
    doc = copy.deepcopy(SIGNAL)
    doc["signal"]["params"]["fast"] = 0
    err = error_for(tmp_path, doc)
    assert err.field == "signal.params.fast"
    assert "integer >= 1" in str(err)


def test_unknown_signal_name_lists_the_signals(tmp_path):
    doc = copy.deepcopy(SIGNAL)
    doc["signal"]["name"] = "macd"
    err = error_for(tmp_path, doc)
    assert err.field == "signal.name"
    assert err.allowed == ("canslim", "cup_and_handle", "livermore_breakout", "trend_following")


def test_a_signal_strategy_rejects_factor_fields(tmp_path):
    err = error_for(tmp_path, {**SIGNAL, "scoring": FACTOR["scoring"]})
    assert err.field == "scoring" and "signal" in err.allowed


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["signal"].update(stop_loss=1.5), "signal.stop_loss"),
        (lambda d: d["signal"].update(max_positions=0), "signal.max_positions"),
        (lambda d: d["signal"].update(sizing="kelly"), "signal.sizing"),
    ],
)
def test_bad_signal_portfolio_values_name_the_field(tmp_path, change, field):
    doc = copy.deepcopy(SIGNAL)
    change(doc)
    assert error_for(tmp_path, doc).field == field


def test_staggered_positions_must_equal_buys_times_holding(tmp_path):
    doc = copy.deepcopy(STAGGERED)
    doc["portfolio"]["top_n"] = 5
    err = error_for(tmp_path, doc)
    assert err.field == "portfolio.top_n" and "= 6" in str(err)


def test_staggered_section_is_required_and_only_for_its_kind(tmp_path):
    doc = copy.deepcopy(STAGGERED)
    del doc["staggered"]
    assert error_for(tmp_path, doc).field == "staggered"
    factor = {**copy.deepcopy(FACTOR), "staggered": STAGGERED["staggered"]}
    assert error_for(tmp_path, factor).field == "staggered"


def test_screens_name_a_known_factor_with_bounds(tmp_path):
    doc = copy.deepcopy(FACTOR)
    doc["universe"] = {"screens": {"return_on_assets": {"min": 0}}}
    err = error_for(tmp_path, doc)
    assert err.field == "universe.screens.return_on_assets" and err.allowed == FACTOR_NAMES
    doc["universe"] = {"screens": {"roa": {"minimum": 0}}}
    err = error_for(tmp_path, doc)
    assert err.field == "universe.screens.roa.minimum" and err.allowed == ("min", "max")


def test_blend_weights_must_sum_to_one(tmp_path):
    doc = copy.deepcopy(BLEND)
    doc["blend"]["sleeves"]["value"] = 0.5
    err = error_for(tmp_path, doc)
    assert err.field == "blend.sleeves" and "sum to 1" in str(err)


def test_blend_sleeves_must_be_strategies_in_the_directory(tmp_path):
    for doc in (SIGNAL, FACTOR):
        write(tmp_path, doc)
    assert set(load_strategies(tmp_path)) == {"trend", "value"}
    doc = copy.deepcopy(BLEND)
    doc["blend"]["sleeves"] = {"trend": 0.25, "valeu": 0.75}
    path = write(tmp_path, doc)
    with pytest.raises(StrategyConfigError) as err:
        load_strategies(tmp_path)
    assert err.value.file == str(path)
    assert err.value.field == "blend.sleeves.valeu"
    assert err.value.allowed == ("trend", "value")


def test_a_valid_blend_loads_with_its_sleeves(tmp_path):
    for doc in (SIGNAL, FACTOR, BLEND):
        write(tmp_path, doc)
    spec = load_strategies(tmp_path)["mix"]
    assert spec.blend.sleeves == (("trend", 0.25), ("value", 0.75))
    assert spec.rebalance == "quarterly"


def test_selecting_a_blend_brings_its_sleeves():
    available = load_strategies()
    chosen = with_blend_sleeves(load_strategies(names=["blend_core"]), available)
    assert set(chosen) == {
        "blend_core",
        "magic_formula",
        "multifactor_smallcap",
        "momentum_12_1",
        "trend_following",
    }

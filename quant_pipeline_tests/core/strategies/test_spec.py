import copy
from pathlib import Path

import pytest
import yaml

from quant_pipeline.config.strategies import load_strategies, load_strategy
from quant_pipeline.core.factors.values import FACTOR_NAMES
from quant_pipeline.core.strategies.spec import StrategyConfigError, parse_strategy

BASE = {
    "name": "tiny",
    "rebalance": "monthly",
    "universe": {"min_market_cap": 1_000_000},
    "scoring": {
        "method": "weighted_zscore",
        "winsorize": [0.05, 0.95],
        "groups": {
            "quality": {"weight": 0.6, "factors": {"roe": 0.5, "roa": 0.5}},
            "value": {"weight": 0.4, "factors": {"pe": {"weight": 1.0, "higher_is_better": False}}},
        },
    },
    "portfolio": {"top_n": 5, "weighting": "equal", "max_sector_weight": 0.4},
    "costs": {"bps": 10},
}


def write(tmp_path: Path, doc: dict, name: str = "tiny.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


def test_both_shipped_strategies_load_with_the_specified_weights():
    specs = load_strategies()
    assert {"multifactor_smallcap", "magic_formula"} <= set(specs)
    mf = specs["multifactor_smallcap"]
    groups = {g.name: g for g in mf.scoring.groups}
    assert {n: g.weight for n, g in groups.items()} == {
        "quality": 0.35,
        "growth": 0.35,
        "value": 0.15,
        "momentum": 0.15,
    }
    weights = {f.factor: (f.weight, f.higher_is_better) for g in groups.values() for f in g.factors}
    assert weights == {
        "roe": (0.25, True),
        "roa": (0.20, True),
        "gross_margin": (0.20, True),
        "operating_margin": (0.20, True),
        "debt_to_equity": (0.15, False),
        "revenue_growth": (0.40, True),
        "earnings_growth": (0.35, True),
        "quarterly_earnings_growth": (0.25, True),
        "pe": (0.35, False),
        "peg": (0.35, False),
        "ps": (0.30, False),
        "momentum_12_1": (0.70, True),
        "volatility": (0.30, False),
    }
    assert mf.rebalance == "quarterly" and mf.scoring.winsorize == (0.05, 0.95)
    assert (mf.universe.min_market_cap, mf.universe.max_market_cap) == (3e8, 1e10)
    assert mf.universe.min_avg_volume == 100_000
    assert (mf.portfolio.top_n, mf.portfolio.weighting, mf.portfolio.max_sector_weight) == (
        20,
        "equal",
        0.30,
    )
    magic = specs["magic_formula"]
    assert magic.scoring.method == "rank_sum"
    assert magic.scoring.factors == ("earnings_yield", "return_on_capital")
    assert magic.universe.exclude_sectors == ("Financials", "Utilities")
    assert magic.universe.min_market_cap == 50e6
    assert (magic.portfolio.top_n, magic.rebalance) == (30, "quarterly")


def test_unknown_factor_error_names_file_field_path_and_allowed_factors(tmp_path):
    doc = copy.deepcopy(BASE)
    doc["scoring"]["groups"]["quality"]["factors"] = {"roee": 0.5, "roa": 0.5}
    path = write(tmp_path, doc)
    with pytest.raises(StrategyConfigError) as err:
        load_strategy(path)
    assert err.value.file == str(path)
    assert err.value.field == "scoring.groups.quality.factors.roee"
    assert err.value.allowed == FACTOR_NAMES
    assert str(path) in str(err.value) and "'roe'" in str(err.value)


@pytest.mark.parametrize(
    ("change", "field", "allowed"),
    [
        (lambda d: d.update(rebalnce="monthly"), "rebalnce", "rebalance"),
        (lambda d: d.update(rebalance="weekly"), "rebalance", "quarterly"),
        (lambda d: d["scoring"].update(method="magic"), "scoring.method", "rank_sum"),
        (lambda d: d["portfolio"].update(weighting="cap"), "portfolio.weighting", "equal"),
        (
            lambda d: d["universe"].update(exclude_sectors=["Tech"]),
            "universe.exclude_sectors[0]",
            "Information Technology",
        ),
        (lambda d: d["universe"].update(min_mcap=1), "universe.min_mcap", "min_market_cap"),
    ],
)
def test_unknown_fields_and_enum_values_list_the_allowed_values(tmp_path, change, field, allowed):
    doc = copy.deepcopy(BASE)
    change(doc)
    with pytest.raises(StrategyConfigError) as err:
        load_strategy(write(tmp_path, doc))
    assert err.value.field == field
    assert allowed in err.value.allowed


def test_group_weights_must_sum_to_one(tmp_path):
    doc = copy.deepcopy(BASE)
    doc["scoring"]["groups"]["value"]["weight"] = 0.5
    with pytest.raises(StrategyConfigError, match=r"scoring.groups: group weights must sum to 1"):
        load_strategy(write(tmp_path, doc))


def test_weights_must_be_positive(tmp_path):
    doc = copy.deepcopy(BASE)
    doc["scoring"]["groups"]["quality"]["factors"] = {"roe": 1.0, "roa": 0}
    with pytest.raises(StrategyConfigError) as err:
        load_strategy(write(tmp_path, doc))
    assert err.value.field == "scoring.groups.quality.factors.roa"
    assert "positive" in str(err.value)


def test_factor_weights_inside_a_group_must_sum_to_one(tmp_path):
    doc = copy.deepcopy(BASE)
    doc["scoring"]["groups"]["quality"]["factors"] = {"roe": 0.5, "roa": 0.6}
    with pytest.raises(StrategyConfigError, match="quality.factors: factor weights must sum"):
        load_strategy(write(tmp_path, doc))


def test_factors_without_weights_share_the_group_equally():
    doc = copy.deepcopy(BASE)
    doc["scoring"]["groups"]["quality"]["factors"] = {
        "roe": None,
        "roa": {"higher_is_better": True},
    }
    spec = parse_strategy(doc)
    assert [f.weight for f in spec.scoring.groups[0].factors] == [0.5, 0.5]


def test_config_hash_ignores_spelling_and_key_order_but_not_weights():
    spec = parse_strategy(BASE)
    reordered = dict(reversed(list(copy.deepcopy(BASE).items())))
    reordered["universe"]["min_market_cap"] = 1e6
    assert parse_strategy(reordered).config_hash == spec.config_hash
    changed = copy.deepcopy(BASE)
    changed["portfolio"]["top_n"] = 6
    assert parse_strategy(changed).config_hash != spec.config_hash
    assert len(spec.config_hash) == 64


def test_load_strategies_selects_names_and_rejects_unknown_ones(tmp_path):
    write(tmp_path, BASE)
    write(tmp_path, {**BASE, "name": "other"}, "other.yaml")
    assert list(load_strategies(tmp_path, names=["tiny"])) == ["tiny"]
    with pytest.raises(StrategyConfigError) as err:
        load_strategies(tmp_path, names=["nope"])
    assert err.value.allowed == ("other", "tiny")


def test_duplicate_strategy_names_are_rejected(tmp_path):
    write(tmp_path, BASE, "a.yaml")
    write(tmp_path, BASE, "b.yaml")
    with pytest.raises(StrategyConfigError, match="also defined in"):
        load_strategies(tmp_path)


def test_trading_section_overrides_only_the_fields_it_names():
    doc = copy.deepcopy(BASE)
    doc["trading"] = {"capital": 25_000, "fractional": True, "slippage_bps": 5, "cash_rate": 0.02}
    spec = parse_strategy(doc, "tiny.yaml")
    assert spec.trading.overrides() == {
        "capital": 25_000.0,
        "fractional": True,
        "slippage_bps": 5.0,
        "cash_rate": 0.02,
    }
    assert parse_strategy(BASE, "tiny.yaml").trading.overrides() == {}


@pytest.mark.parametrize(
    ("trading", "field", "problem"),
    [
        ({"capitol": 1}, "trading.capitol", "unknown field"),
        ({"capital": 0}, "trading.capital", "must be positive"),
        ({"fractional": "yes"}, "trading.fractional", "must be true or false"),
        ({"commission_minimum": -1}, "trading.commission_minimum", "must not be negative"),
        ({"cash_rate": -1}, "trading.cash_rate", "must be > -1"),
        ({"slippage_bps": 10_000}, "trading.slippage_bps", "must be < 10000"),
    ],
)
def test_bad_trading_fields_name_the_field_and_the_rule(trading, field, problem):
    doc = copy.deepcopy(BASE)
    doc["trading"] = trading
    with pytest.raises(StrategyConfigError, match=problem) as err:
        parse_strategy(doc, "tiny.yaml")
    assert err.value.field == field and err.value.file == "tiny.yaml"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["portfolio"].update(top_n=0),
            "strategies/tiny.yaml: portfolio.top_n: must be >= 1, got 0",
        ),
        (
            lambda d: d["portfolio"].update(top_n=2.5),
            "strategies/tiny.yaml: portfolio.top_n: must be a whole number, got 2.5",
        ),
        (
            lambda d: d.update(rebalance="weekly"),
            "strategies/tiny.yaml: rebalance: unknown value 'weekly'; "
            "allowed: ['monthly', 'quarterly', 'annual']",
        ),
        (
            lambda d: d["portfolio"].update(sizing="slot"),
            "strategies/tiny.yaml: portfolio.sizing: unknown field; "
            "allowed: ['top_n', 'weighting', 'max_sector_weight', 'max_weight', 'turnover_limit', "
            "'lookback_days']",
        ),
        (
            lambda d: d["scoring"].update(factors={"roe": 1.0}),
            "strategies/tiny.yaml: scoring: give exactly one of 'groups' or 'factors'",
        ),
    ],
)
def test_the_error_message_is_file_key_path_rule_and_allowed_values(change, message):
    doc = copy.deepcopy(BASE)
    change(doc)
    with pytest.raises(StrategyConfigError) as err:
        parse_strategy(doc, "strategies/tiny.yaml")
    assert str(err.value).startswith(message)


def test_a_parsed_spec_keeps_numbers_as_floats_so_the_hash_ignores_yaml_spelling():
    spec = parse_strategy(BASE)
    assert spec.universe.min_market_cap == 1e6 and isinstance(spec.universe.min_market_cap, float)
    assert isinstance(spec.costs.bps, float) and isinstance(spec.portfolio.top_n, int)

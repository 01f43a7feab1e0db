"""The number of stocks as an option of every strategy kind."""

import pytest

from quant_pipeline.config.strategies import load_strategies
from quant_pipeline.core.strategies.sizing import with_stocks
from quant_pipeline.core.strategies.target_weights import names_per_sector


def test_stocks_sets_each_kinds_book_size_and_changes_the_config_hash():
    specs = load_strategies(names=["magic_formula", "magic_formula_staggered", "canslim"])
    factor = with_stocks(specs["magic_formula"], 15)
    assert factor.portfolio.top_n == 15 and factor.config_hash != specs["magic_formula"].config_hash
    staggered = with_stocks(specs["magic_formula_staggered"], 15)
    # 12 holding periods: ceil(15 / 12) = 2 names per rebalance, the book still fills in a year
    assert staggered.portfolio.top_n == 15
    assert staggered.staggered.buy_per_rebalance == 2
    assert staggered.staggered.hold_periods == 12
    signal = with_stocks(specs["canslim"], 10)
    assert signal.signal.max_positions == 10 and signal.signal.max_sector_weight == 0.3


def test_the_sector_cap_rule_follows_the_new_size():
    spec = load_strategies(names=["momentum_12_1"])["momentum_12_1"]
    assert names_per_sector(with_stocks(spec, 15)) == 4  # floor(0.30 x 15)
    assert names_per_sector(with_stocks(spec, 2)) == 1  # floor(0.6) -> at least one


def test_a_blend_or_a_bad_count_is_refused():
    specs = load_strategies(names=["blend_core"])
    with pytest.raises(ValueError, match="is a blend"):
        with_stocks(specs["blend_core"], 10)
    spec = load_strategies(names=["magic_formula"])["magic_formula"]
    with pytest.raises(ValueError, match="stocks must be an integer >= 1, got 0"):
        with_stocks(spec, 0)

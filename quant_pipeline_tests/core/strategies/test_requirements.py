"""Which strategies run on which inputs: each missing input removes only what depends on it."""

import polars as pl

from quant_pipeline.config.strategies import load_strategies
from quant_pipeline.core.strategies.requirements import (
    available_inputs,
    plan_labels,
    plan_strategies,
    required_inputs,
)

PRICE_ONLY = {
    "momentum_12_1",
    "low_volatility",
    "trend_following",
    "canslim",
    "livermore_breakout",
    "cup_and_handle",
}


def test_price_only_inputs_run_the_six_price_strategies_and_skip_the_rest_with_reasons():
    plan = plan_strategies(load_strategies(), {"prices"})
    assert set(plan.runnable) == PRICE_ONLY
    assert set(plan.skipped) == {
        "magic_formula",
        "magic_formula_lean",
        "magic_formula_staggered",
        "multifactor_smallcap",
        "blend_core",
    }
    assert (
        "needs fundamentals (curated.fundamentals is empty) for earnings_yield"
        in (plan.skipped["magic_formula"])
    )
    assert plan.skipped["blend_core"] == "sleeve(s) magic_formula, multifactor_smallcap skipped"


def test_without_sectors_a_sector_cap_is_dropped_with_a_note_not_applied_to_one_bucket():
    plan = plan_strategies(load_strategies(), {"prices"})
    assert plan.runnable["momentum_12_1"].portfolio.max_sector_weight is None
    assert plan.notes["momentum_12_1"].startswith("sector cap 30% not applied")
    with_sectors = plan_strategies(load_strategies(), {"prices", "securities"})
    assert with_sectors.runnable["momentum_12_1"].portfolio.max_sector_weight == 0.30
    assert with_sectors.notes == {}


def test_fundamentals_without_securities_skip_only_the_sector_rules():
    present = available_inputs(fundamentals_rows=10, securities_with_sector=0, rows_with_shares=4)
    assert present == {"prices", "fundamentals", "shares"}
    plan = plan_strategies(load_strategies(), present)
    # multifactor_smallcap has no sector rule (exclude_sectors is empty): it runs
    assert "multifactor_smallcap" in plan.runnable
    assert plan.skipped["magic_formula"] == (
        "needs sectors/countries (curated.securities has no sectors) for exclude_sectors"
    )
    assert plan.skipped["blend_core"] == "sleeve(s) magic_formula skipped"


def test_every_input_present_skips_nothing():
    plan = plan_strategies(load_strategies(), {"prices", "fundamentals", "securities", "shares"})
    assert plan.skipped == {}
    assert set(plan.runnable) == set(load_strategies())


def test_required_inputs_name_what_needs_each_input():
    spec = load_strategies(names=["multifactor_smallcap"])["multifactor_smallcap"]
    needs = required_inputs(spec)
    assert needs["shares"] == ["market_cap"]
    assert "roe" in needs["fundamentals"] and "momentum_12_1" not in needs["fundamentals"]
    assert "securities" not in needs


def test_plan_labels_are_backtest_label_rows():
    plan = plan_strategies(load_strategies(names=["magic_formula", "momentum_12_1"]), {"prices"})
    labels = plan_labels(plan)
    assert labels.schema == pl.Schema(
        {"strategy": pl.String, "label": pl.String, "value": pl.String}
    )
    assert labels.select("strategy", "label").rows() == [
        ("magic_formula", "skipped"),
        ("momentum_12_1", "sector_cap"),
    ]


def test_every_factor_column_is_either_price_only_or_needs_statements_or_shares():
    from quant_pipeline.core.factors.values import FACTOR_NAMES
    from quant_pipeline.core.strategies.requirements import (
        FUNDAMENTAL_FACTORS,
        PRICE_FACTORS,
        SHARES_FACTORS,
    )

    assert FUNDAMENTAL_FACTORS | PRICE_FACTORS | SHARES_FACTORS == set(FACTOR_NAMES)
    assert {"earnings_yield_approx", "return_on_capital_approx"} <= FUNDAMENTAL_FACTORS
    assert not PRICE_FACTORS & FUNDAMENTAL_FACTORS

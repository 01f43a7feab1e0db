"""Which strategies run on which inputs: each missing input removes only what depends on it."""

import dataclasses

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


def _full_inputs():
    return {"prices", "fundamentals", "securities", "shares"}


def test_an_exchange_rule_with_no_exchange_known_skips_the_strategy_saying_exactly_why():
    from quant_pipeline.core.strategies.requirements import ProfileCoverage

    # the S&P folder: 505 priced tickers, securities.csv without exchange or country columns
    coverage = ProfileCoverage(tickers=505, with_exchange=0, with_country=0)
    plan = plan_strategies(load_strategies(), _full_inputs(), coverage)
    assert plan.skipped == {
        "magic_formula_lean": "exchange unknown for all 505 tickers; add an exchange column "
        "to securities.csv, see docs/data_sources.md"
    }
    # a country rule lets unknown countries through: it runs, with a note that it filters nothing
    assert "magic_formula_staggered" in plan.runnable
    assert plan.profile_notes["magic_formula_staggered"] == (
        "country unknown for all 505 tickers: universe.countries lets them all through (an "
        "unknown country passes); add a country column to securities.csv, see docs/data_sources.md"
    )
    labels = plan_labels(plan)
    assert ("magic_formula_lean", "skipped") in labels.select("strategy", "label").rows()
    assert ("magic_formula_staggered", "profile_fields") in labels.select(
        "strategy", "label"
    ).rows()


def test_a_partly_known_exchange_runs_the_strategy_with_a_count_of_the_unknown():
    from quant_pipeline.core.strategies.requirements import ProfileCoverage

    coverage = ProfileCoverage(tickers=505, with_exchange=500, with_country=505)
    plan = plan_strategies(load_strategies(), _full_inputs(), coverage)
    assert plan.skipped == {}
    assert plan.profile_notes == {
        "magic_formula_lean": "exchange unknown for 5 of 505 tickers: they fail universe.exchanges"
    }
    # everything known: nothing to say
    known = ProfileCoverage(tickers=505, with_exchange=505, with_country=505)
    assert plan_strategies(load_strategies(), _full_inputs(), known).profile_notes == {}


def test_a_screen_exchange_rule_that_allows_unknown_names_is_not_a_reason_to_skip():
    from quant_pipeline.core.strategies.requirements import ProfileCoverage, profile_findings
    from quant_pipeline.core.strategies.screen import ScreenRules
    from quant_pipeline.core.strategies.spec import parse_strategy

    base = {
        "name": "x",
        "rebalance": "monthly",
        "scoring": {"method": "rank_sum", "factors": {"earnings_yield": None}},
        "portfolio": {"top_n": 4},
    }
    spec = parse_strategy(base)
    nothing = ProfileCoverage(tickers=10, with_exchange=0, with_country=0)
    for allow, expected in ((True, (None, "lets them all through")), (False, ("unknown", None))):
        rules = ScreenRules(exchanges={"include": ["NYSE"], "allow_unknown": allow})
        universe = dataclasses.replace(spec.universe, screen="mine", screen_rules=rules)
        reason, note = profile_findings(dataclasses.replace(spec, universe=universe), nothing)
        if expected[0] is None:
            assert reason is None and expected[1] in note
            assert note.startswith("exchange unknown for all 10 tickers: screen mine: exchanges")
        else:
            assert reason.startswith("exchange unknown for all 10 tickers; add an exchange")
            assert note is None

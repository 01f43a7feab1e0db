"""universe.exchanges, universe.screen (a named screen file) and the LEAN magic formula."""

import copy
from datetime import date

import polars as pl
import pytest
import yaml

from quant_pipeline.config import strategies as strategy_files
from quant_pipeline.config.strategies import load_strategies, load_strategy
from quant_pipeline.core.factors.values import FACTOR_NAMES
from quant_pipeline.core.strategies.scoring import eligibility_columns, score, with_country
from quant_pipeline.core.strategies.spec import StrategyConfigError, parse_strategy
from quant_pipeline.defs.backtest import strategy_benchmark

FACTOR = {
    "name": "value",
    "rebalance": "monthly",
    "scoring": {"method": "rank_sum", "factors": {"earnings_yield": None}},
    "portfolio": {"top_n": 4},
}
D = date(2024, 1, 2)


def _values() -> pl.DataFrame:
    """Five names on one date: exchanges NYSE, NASDAQ, OTC, unknown, NYSE; prices and ROA."""
    frame = pl.DataFrame(
        {
            "rebalance_date": [D] * 5,
            "ticker": ["A", "B", "C", "D", "E"],
            "sector": ["Energy"] * 5,
            "in_universe": [True] * 5,
            "price": [10.0, 20.0, 30.0, 40.0, 3.0],
            "roa": [0.30, 0.05, 0.40, 0.50, 0.60],
            "earnings_yield": [0.1, 0.2, 0.3, 0.4, 0.5],
        }
    )
    missing = [c for c in FACTOR_NAMES if c not in frame.columns]
    return frame.with_columns([pl.lit(1.0e9).alias(c) for c in missing])


SECURITIES = pl.DataFrame(
    {
        "ticker": ["A", "B", "C", "D", "E"],
        "exchange": ["NYSE", "NASDAQ", "OTC", None, "NYSE"],
        "country": ["US"] * 5,
    }
)


def _eligible(spec) -> dict[str, bool]:
    values = with_country(_values(), SECURITIES)
    scores, _ = score(values, spec)
    return dict(zip(scores["ticker"], scores["eligible"], strict=True))


def test_universe_exchanges_keeps_the_listed_exchanges_and_drops_unknown_ones():
    spec = parse_strategy({**FACTOR, "universe": {"exchanges": ["NYSE", "NASDAQ"]}})
    assert "exchange" in eligibility_columns(spec)
    assert _eligible(spec) == {"A": True, "B": True, "C": False, "D": False, "E": True}


def test_a_named_screen_adds_its_rules_to_the_strategys_eligibility(tmp_path, monkeypatch):
    monkeypatch.setattr(strategy_files, "SCREENS_DIR", tmp_path)
    (tmp_path / "tiny.yaml").write_text(
        yaml.safe_dump(
            {
                "min_price": 5,
                "exchanges": {"include": ["NYSE", "NASDAQ"], "allow_unknown": True},
                "factors": {"roa": {"min": 0.25}},
            }
        )
    )
    doc = {**copy.deepcopy(FACTOR), "universe": {"screen": "tiny"}}
    path = tmp_path / "value.yaml"
    path.write_text(yaml.safe_dump(doc))
    spec = load_strategy(path)
    assert spec.universe.screen == "tiny" and spec.universe.screen_rules.min_price == 5
    # B: ROA 5% < 25%; C: OTC; D: unknown exchange allowed by the screen; E: price 3 < 5
    assert _eligible(spec) == {"A": True, "B": False, "C": False, "D": True, "E": False}
    assert "screen_rules" in spec.to_dict()["universe"]  # the rules are part of the hash


def test_an_unknown_or_unusable_screen_is_named_with_the_rule(tmp_path, monkeypatch):
    screens = tmp_path / "screens"
    screens.mkdir()
    monkeypatch.setattr(strategy_files, "SCREENS_DIR", screens)
    (screens / "liquid.yaml").write_text("max_spread: 0.02\n")
    path = tmp_path / "value.yaml"
    path.write_text(yaml.safe_dump({**FACTOR, "universe": {"screen": "liqid"}}))
    with pytest.raises(StrategyConfigError) as err:
        load_strategy(path)
    assert err.value.field == "universe.screen" and err.value.allowed == ("liquid",)
    path.write_text(yaml.safe_dump({**FACTOR, "universe": {"screen": "liquid"}}))
    with pytest.raises(StrategyConfigError, match="max_spread: is not available to strategies"):
        load_strategy(path)


def test_the_lean_magic_formula_carries_the_rules_as_written():
    lean = load_strategies(names=["magic_formula_lean"])["magic_formula_lean"]
    assert lean.kind == "staggered" and lean.rebalance == "monthly"
    assert lean.universe.exchanges == ("NYSE", "NASDAQ")
    assert lean.universe.exclude_sectors == ("Financials", "Utilities")
    assert lean.universe.min_market_cap == 50_000_000
    assert lean.universe.screens == (("roa", 0.25, None),)
    assert lean.trading.capital == 1_000_000 and lean.benchmark == "QVAL"
    assert (lean.staggered.buy_per_rebalance, lean.staggered.hold_periods) == (2, 12)


def test_a_strategy_benchmark_is_used_only_when_the_data_has_it():
    lean = load_strategies(names=["magic_formula_lean"])["magic_formula_lean"]
    primary = ("equal_weight", pl.DataFrame({"date": [D], "return": [0.01]}))
    table = pl.DataFrame(
        {
            "date": [D, D],
            "benchmark": ["equal_weight", "QVAL"],
            "return": [0.01, 0.02],
            "is_primary": [True, False],
        }
    )
    name, series = strategy_benchmark(lean, table, primary)
    assert name == "QVAL" and series["benchmark_return"].to_list() == [0.02]
    without = table.filter(pl.col("benchmark") != "QVAL")
    assert strategy_benchmark(lean, without, primary) == primary

"""The universe screen on tiny hand-made candidates: pass/fail, first failed rule, summary."""

import math

import polars as pl
import pytest
from pydantic import ValidationError

from quant_pipeline.core.strategies.screen import (
    ScreenInputError,
    ScreenRules,
    high_low_spread,
    screen,
    screen_summary,
)

CANDIDATES = pl.DataFrame(
    {
        "ticker": ["AAA", "BBB", "CCC", "DDD", "EEE"],
        "sector": ["Industrials", "Financials", "Energy", "Industrials", "Utilities"],
        "exchange": ["NYSE", "NASDAQ", "OTC", "NYSE", None],
        "country": ["US", "US", "US", None, "US"],
        "price": [50.0, 20.0, 3.0, 40.0, 30.0],
        "market_cap": [5e9, 2e9, 9e9, 3e9, None],
        "avg_dollar_volume": [2e7, 1e7, 5e7, 1e7, 1e7],
        "roa": [0.30, 0.10, 0.40, 0.26, 0.50],
    }
)
RULES = ScreenRules(
    min_market_cap=1e9,
    sectors={"exclude": ["Financials", "Utilities"]},
    exchanges={"include": ["NYSE", "NASDAQ"]},
    countries={"include": ["US"]},
    factors={"roa": {"min": 0.25}},
)


def test_each_candidate_gets_pass_or_its_first_failed_rule_and_the_value():
    result = screen(CANDIDATES, RULES)
    got = {
        r["ticker"]: (r["passed"], r["failed_rule"], r["failed_value"])
        for r in result.iter_rows(named=True)
    }
    assert got == {
        "AAA": (True, None, None),
        # BBB breaks sectors (Financials) and factors.roa (0.10): sectors comes first
        "BBB": (False, "sectors", "Financials"),
        "CCC": (False, "exchanges", "OTC"),
        # an unknown country fails a country rule unless allow_unknown is set
        "DDD": (False, "countries", None),
        # no market cap: the market-cap rule fails first, with no value to show
        "EEE": (False, "min_market_cap", None),
    }


def test_the_summary_counts_first_and_any_failures_in_rule_order():
    summary = screen_summary(screen(CANDIDATES, RULES), RULES)
    assert summary.rows() == [
        ("min_market_cap", 1, 1, 4),
        ("sectors", 1, 2, 3),  # BBB first here; EEE (Utilities) already out
        ("exchanges", 1, 2, 2),  # CCC first; EEE's exchange is unknown too
        ("countries", 1, 1, 1),
        ("factors.roa", 0, 1, 1),  # only BBB breaks it, and BBB failed earlier
        ("passed", 0, 0, 1),
    ]


def test_allow_unknown_lets_a_missing_country_through():
    raw = {**RULES.model_dump(), "countries": {"include": ["US"], "allow_unknown": True}}
    rules = ScreenRules.model_validate(raw)
    result = screen(CANDIDATES, rules)
    assert result.filter(pl.col("ticker") == "DDD")["passed"].to_list() == [True]


def test_no_rules_pass_everyone():
    assert screen(CANDIDATES, ScreenRules())["passed"].all()


def test_a_rule_on_a_missing_column_is_refused_naming_it():
    with pytest.raises(ScreenInputError, match=r"\['float_shares'\]"):
        screen(CANDIDATES, ScreenRules(min_float_shares=1e6))


@pytest.mark.parametrize(
    "raw, words",
    [
        ({"min_market_capp": 1}, "min_market_capp"),
        ({"sectors": {"include": ["Tech"]}}, "unknown ['Tech']"),
        ({"factors": {"roa": {"min": 0.5, "max": 0.1}}}, "min 0.5 is above max 0.1"),
        ({"countries": {"include": ["US"], "allow_unknow": True}}, "allow_unknow"),
    ],
)
def test_bad_rules_are_refused_with_the_key(raw, words):
    with pytest.raises(ValidationError, match=words.replace("[", r"\[").replace("]", r"\]")):
        ScreenRules.model_validate(raw)


def test_the_high_low_spread_matches_corwin_schultz_by_hand():
    prices = pl.DataFrame(
        {
            "ticker": ["X", "X", "X"],
            "date": pl.date_range(pl.date(2024, 1, 2), pl.date(2024, 1, 4), eager=True),
            "high": [11.0, 12.0, 12.0],
            "low": [10.0, 11.0, 12.0],
        }
    )

    def cs(h1, l1, h2, l2):
        beta = math.log(h1 / l1) ** 2 + math.log(h2 / l2) ** 2
        gamma = math.log(max(h1, h2) / min(l1, l2)) ** 2
        k = 3 - 2 * math.sqrt(2)
        alpha = (math.sqrt(2 * beta) - math.sqrt(beta)) / k - math.sqrt(gamma / k)
        return max(0.0, 2 * (math.exp(alpha) - 1) / (1 + math.exp(alpha)))

    expected = (cs(11, 10, 12, 11) + cs(12, 11, 12, 12)) / 2
    [(ticker, spread)] = high_low_spread(prices).rows()
    assert ticker == "X"
    assert spread == pytest.approx(expected, rel=1e-12)


def test_a_flat_market_has_zero_spread_and_only_the_last_window_counts():
    prices = pl.DataFrame(
        {
            "ticker": ["Y"] * 4,
            "date": pl.date_range(pl.date(2024, 1, 2), pl.date(2024, 1, 5), eager=True),
            "high": [20.0, 10.0, 10.0, 10.0],
            "low": [5.0, 10.0, 10.0, 10.0],
        }
    )
    assert high_low_spread(prices, window=2)["spread"].to_list() == [0.0]

"""Weighting schemes on tiny hand-computed data; Ledoit–Wolf against scikit-learn; no lookahead."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
import yaml
from sklearn.covariance import ledoit_wolf as sk_ledoit_wolf

from quant_pipeline.config.strategies import STRATEGIES_DIR, load_strategy
from quant_pipeline.core.strategies.spec import StrategyConfigError, parse_strategy
from quant_pipeline.core.strategies.target_weights import WEIGHTS_SCHEMA
from quant_pipeline.core.strategies.weighting import (
    PriceHistory,
    WeightingInputError,
    WeightingRules,
    cap_weights,
    covariance_before,
    ledoit_wolf,
    limit_turnover,
    min_variance_weights,
    reweight,
    risk_parity_weights,
)

D1, D2 = date(2024, 1, 2), date(2024, 4, 1)


def _selection(rows: list[tuple]) -> pl.DataFrame:
    """(date, ticker, sector, score, rank) rows with equal weights per date."""
    frame = pl.DataFrame(
        rows, schema=["rebalance_date", "ticker", "sector", "score", "rank"], orient="row"
    )
    return frame.with_columns(
        strategy=pl.lit("s"), weight=1.0 / pl.len().over("rebalance_date")
    ).select([pl.col(c).cast(t) for c, t in WEIGHTS_SCHEMA.items()])


def _weights(frame: pl.DataFrame, day: date = D1) -> dict[str, float]:
    return dict(frame.filter(pl.col("rebalance_date") == day).select("ticker", "weight").rows())


SELECTED = _selection(
    [(D1, "A", "Tech", 2.0, 1), (D1, "B", "Tech", 1.0, 2), (D1, "C", "Energy", 0.5, 3)]
)
VALUES = pl.DataFrame(
    {
        "rebalance_date": [D1] * 3,
        "ticker": ["A", "B", "C"],
        "volatility": [0.1, 0.2, 0.4],
        "market_cap": [1e9, 3e9, 4e9],
    }
)


def test_inverse_volatility_weights_are_proportional_to_one_over_vol():
    w, report = reweight(SELECTED, WeightingRules("inverse_volatility"), values=VALUES)
    # 1/0.1 : 1/0.2 : 1/0.4 = 10 : 5 : 2.5 -> 4/7, 2/7, 1/7
    assert _weights(w) == pytest.approx({"A": 4 / 7, "B": 2 / 7, "C": 1 / 7})
    assert report["max_sector_weight"][0] == pytest.approx(6 / 7)


def test_market_cap_weights():
    w, _ = reweight(SELECTED, WeightingRules("market_cap"), values=VALUES)
    assert _weights(w) == pytest.approx({"A": 0.125, "B": 0.375, "C": 0.5})


def test_score_weights_measure_the_distance_above_the_weakest_eligible_name():
    scores = pl.DataFrame(
        {
            "rebalance_date": [D1] * 4,
            "ticker": ["A", "B", "C", "Z"],
            "eligible": [True] * 4,
            "score": [2.0, 1.0, 0.5, -1.0],
        }
    )
    w, _ = reweight(SELECTED, WeightingRules("score"), scores=scores)
    # strengths 3, 2, 1.5 over the floor -1 -> /6.5
    assert _weights(w) == pytest.approx({"A": 3 / 6.5, "B": 2 / 6.5, "C": 1.5 / 6.5})
    # rank_sum: lower is better; scores 2, 3, 4 over an eligible max of 6 -> 4, 3, 2
    ranks = scores.with_columns(score=pl.Series([2.0, 3.0, 4.0, 6.0]))
    sel = SELECTED.with_columns(score=pl.Series([2.0, 3.0, 4.0]))
    w, _ = reweight(sel, WeightingRules("score", higher_is_better=False), scores=ranks)
    assert _weights(w) == pytest.approx({"A": 4 / 9, "B": 3 / 9, "C": 2 / 9})


def test_max_weight_redistributes_the_excess_until_no_name_exceeds_it():
    # 0.6 -> 0.4, excess 0.2 split 3:1 -> 0.45, 0.15; 0.45 -> 0.4, 0.05 to the last -> 0.2
    assert cap_weights(np.array([0.6, 0.3, 0.1]), 0.4) == pytest.approx([0.4, 0.4, 0.2])
    assert cap_weights(np.array([0.6, 0.3, 0.1]), 0.2) == pytest.approx([1 / 3] * 3)


def test_turnover_limit_moves_part_of_the_way():
    new, turnover, bound = limit_turnover({"A": 0.5, "B": 0.5}, {"B": 0.5, "C": 0.5}, 0.25)
    assert bound and turnover == 0.25
    assert new == pytest.approx({"A": 0.25, "B": 0.5, "C": 0.25})
    same, turnover, bound = limit_turnover({}, {"B": 1.0}, 0.25)
    assert same == {"B": 1.0} and not bound and turnover == 0.5


def test_turnover_limit_across_two_rebalances_keeps_part_of_the_old_book():
    sel = _selection(
        [
            (D1, "A", "T", 2.0, 1),
            (D1, "B", "T", 1.0, 2),
            (D2, "C", "E", 1.0, 1),
            (D2, "B", "T", 0.5, 2),
        ]
    )
    w, report = reweight(sel, WeightingRules("equal", turnover_limit=0.2))
    assert _weights(w, D2) == pytest.approx({"A": 0.3, "B": 0.5, "C": 0.2})
    assert report["turnover_limited"].to_list() == [False, True]
    old = w.filter((pl.col("rebalance_date") == D2) & (pl.col("ticker") == "A"))
    assert old["rank"][0] is None and old["sector"][0] == "T"


def test_ledoit_wolf_matches_scikit_learn():
    rng = np.random.default_rng(3)
    x = rng.normal(0, 0.01, size=(80, 6)) @ rng.normal(size=(6, 6))
    ours, shrink = ledoit_wolf(x)
    theirs, their_shrink = sk_ledoit_wolf(x)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-16)
    assert shrink == pytest.approx(their_shrink, rel=1e-10)


def test_min_variance_with_a_diagonal_covariance_is_inverse_variance():
    cov = np.diag([0.01, 0.04, 0.09])
    expected = np.array([1 / 0.01, 1 / 0.04, 1 / 0.09])
    np.testing.assert_allclose(min_variance_weights(cov), expected / expected.sum(), atol=1e-9)
    # capped at 0.5: A sits at the cap, B and C share the rest as 1/var -> 0.5 * (9/13, 4/13)
    capped = min_variance_weights(cov, 0.5)
    np.testing.assert_allclose(capped, [0.5, 0.5 * 9 / 13, 0.5 * 4 / 13], atol=1e-8)


def test_min_variance_of_two_correlated_names_has_the_closed_form():
    s1, s2, rho = 0.1, 0.2, 0.3
    cov = np.array([[s1**2, rho * s1 * s2], [rho * s1 * s2, s2**2]])
    w1 = (s2**2 - rho * s1 * s2) / (s1**2 + s2**2 - 2 * rho * s1 * s2)
    np.testing.assert_allclose(min_variance_weights(cov), [w1, 1 - w1], atol=1e-9)


def test_risk_parity_equalises_risk_contributions():
    np.testing.assert_allclose(risk_parity_weights(np.diag([0.01, 0.04])), [2 / 3, 1 / 3])
    cov = np.array([[0.04, 0.006, 0.0], [0.006, 0.09, 0.012], [0.0, 0.012, 0.01]])
    w = risk_parity_weights(cov)
    contributions = w * (cov @ w)
    np.testing.assert_allclose(contributions, contributions.mean(), rtol=1e-9)


def _prices(n_days: int = 90, seed: int = 1) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    days = [date(2023, 9, 1) + timedelta(days=i) for i in range(n_days)]
    rows = []
    for ticker, vol in (("A", 0.01), ("B", 0.02), ("C", 0.03)):
        path = 100 * np.cumprod(1 + rng.normal(0, vol, n_days))
        rows += [(ticker, d, float(p)) for d, p in zip(days, path, strict=True)]
    return pl.DataFrame(rows, schema=["ticker", "date", "adj_close"], orient="row")


def test_covariance_uses_only_returns_before_the_rebalance_date():
    prices = _prices()
    as_of = date(2023, 11, 15)
    rules = WeightingRules("min_variance", lookback_days=60, min_history=30)
    before = covariance_before(PriceHistory(prices), as_of, ["A", "B", "C"], rules)
    # perturb every price on and after D: nothing the rebalance sees may change
    shocked = prices.with_columns(
        adj_close=pl.when(pl.col("date") >= as_of)
        .then(pl.col("adj_close") * 3.0)
        .otherwise(pl.col("adj_close"))
    )
    after = covariance_before(PriceHistory(shocked), as_of, ["A", "B", "C"], rules)
    np.testing.assert_array_equal(before[0], after[0])
    # and the window is exactly the 60 returns ending on the day before D
    window = prices.filter(pl.col("date") < as_of).sort("date").group_by("ticker").tail(61)
    wide = window.pivot(on="ticker", index="date", values="adj_close").sort("date")
    rets = wide.select(["A", "B", "C"]).to_numpy()
    expected, _ = ledoit_wolf(rets[1:] / rets[:-1] - 1)
    np.testing.assert_allclose(before[0], expected, rtol=1e-12)
    # perturbing the day before D does change it (the test can fail)
    moved = prices.with_columns(
        adj_close=pl.when(pl.col("date") == as_of - timedelta(days=1))
        .then(pl.col("adj_close") * 1.1)
        .otherwise(pl.col("adj_close"))
    )
    assert not np.allclose(
        covariance_before(PriceHistory(moved), as_of, ["A", "B", "C"], rules)[0], before[0]
    )


def test_risk_parity_reweight_drops_a_name_without_history_and_says_so():
    prices = _prices().filter(~((pl.col("ticker") == "C") & (pl.col("date") < date(2023, 11, 10))))
    sel = _selection(
        [
            (date(2023, 11, 15), "A", "T", 2.0, 1),
            (date(2023, 11, 15), "B", "T", 1.0, 2),
            (date(2023, 11, 15), "C", "E", 0.5, 3),
        ]
    )
    rules = WeightingRules("risk_parity", lookback_days=60, min_history=30)
    w, report = reweight(sel, rules, history=PriceHistory(prices))
    assert sorted(w["ticker"]) == ["A", "B"] and report["dropped"][0] == "C"
    assert w["weight"].sum() == pytest.approx(1.0)
    assert 0 <= report["covariance_shrinkage"][0] <= 1


def test_unknown_scheme_and_bad_cap_are_rejected():
    with pytest.raises(WeightingInputError, match="allowed"):
        WeightingRules("magic")
    with pytest.raises(WeightingInputError, match="max_weight"):
        WeightingRules("equal", max_weight=1.5)


def _doc(**portfolio) -> dict:
    doc = yaml.safe_load((STRATEGIES_DIR / "multifactor_smallcap.yaml").read_text())
    doc["portfolio"].update(portfolio)
    return doc


def test_the_yaml_options_reach_the_weighting_rules_and_equal_keeps_the_config_hash():
    spec = parse_strategy(
        _doc(weighting="risk_parity", max_weight=0.08, turnover_limit=0.3, lookback_days=126)
    )
    rules = WeightingRules.from_spec(spec)
    assert (rules.scheme, rules.max_weight, rules.turnover_limit, rules.lookback_days) == (
        "risk_parity",
        0.08,
        0.3,
        126,
    )
    assert not rules.is_equal
    shipped = load_strategy(STRATEGIES_DIR / "multifactor_smallcap.yaml")
    assert parse_strategy(_doc()).config_hash == shipped.config_hash
    assert "max_weight" not in shipped.to_dict()["portfolio"]


def test_a_bad_turnover_limit_in_yaml_names_the_field():
    with pytest.raises(StrategyConfigError, match="portfolio.turnover_limit"):
        parse_strategy(_doc(turnover_limit=2.0))
    with pytest.raises(StrategyConfigError, match="portfolio.weighting"):
        parse_strategy(_doc(weighting="cap_weighted"))


def test_the_covariance_audit_passes_for_prior_prices_and_catches_a_leak(monkeypatch):
    import quant_pipeline.core.strategies.weighting as weighting

    prices = _prices()
    d = date(2023, 11, 15)
    sel = pl.DataFrame({"rebalance_date": [d] * 3, "ticker": ["A", "B", "C"]})
    rules = WeightingRules("risk_parity", lookback_days=60, min_history=30)
    assert weighting.audit_covariance(prices, sel, rules, [d])["matches"].to_list() == [True]
    # a covariance that reads D's own price (side="right") must be caught
    original = np.searchsorted
    monkeypatch.setattr(
        weighting.np,
        "searchsorted",
        lambda a, v, side="left": original(a, v, side="right"),
    )
    leaked = weighting.audit_covariance(prices, sel, rules, [d])
    assert leaked["matches"].to_list() == [False]

"""Sweep files and sweeps on a tiny hand-made market."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest
import yaml

from quant_pipeline.config.strategies import STRATEGIES_DIR
from quant_pipeline.config.sweeps import SWEEPS_DIR, load_sweep
from quant_pipeline.core.backtest.share_simulation import TradingModel
from quant_pipeline.core.research.sweeps import (
    SweepConfigError,
    parse_sweep,
    run_sweep,
)

BASE = {
    "name": "tiny",
    "rebalance": "monthly",
    "scoring": {
        "method": "weighted_zscore",
        "groups": {
            "momentum": {"weight": 0.5, "factors": {"momentum_12_1": 1.0}},
            "quality": {"weight": 0.5, "factors": {"roe": 1.0}},
        },
    },
    "portfolio": {"top_n": 1, "weighting": "equal"},
}


def test_the_grid_is_the_product_in_file_order_and_group_weights_reach_every_group():
    sweep = parse_sweep(
        {
            "strategy": "tiny",
            "grid": {
                "portfolio.top_n": [1, 2, 3],
                "scoring.group_weights": [
                    {"momentum": 0.5, "quality": 0.5},
                    {"momentum": 0.9, "quality": 0.1},
                ],
            },
            "heatmap": {"x": "top_n", "y": "group_weights"},
        },
        BASE,
    )
    assert len(sweep.variants) == 6
    assert [v.params["top_n"] for v in sweep.variants] == [1, 1, 2, 2, 3, 3]
    last = sweep.variants[-1]
    assert last.name == "tiny_sweep__v005"
    assert last.params["group_weights"] == "momentum=0.9/quality=0.1"
    assert [g.weight for g in last.spec.scoring.groups] == [0.9, 0.1]
    assert last.spec.portfolio.top_n == 3
    assert sweep.heatmap == ("top_n", "group_weights", "sharpe_ratio")


def test_a_bad_value_fails_naming_the_variant_and_the_field():
    with pytest.raises(SweepConfigError, match="variant 1: portfolio.top_n"):
        parse_sweep({"strategy": "tiny", "grid": {"portfolio.top_n": [2, 0]}}, BASE, "s.yaml")
    with pytest.raises(SweepConfigError, match="must name every group"):
        parse_sweep(
            {"strategy": "tiny", "grid": {"scoring.group_weights": [{"momentum": 1.0}]}}, BASE
        )
    with pytest.raises(SweepConfigError, match="unknown field"):
        parse_sweep({"strategy": "tiny", "grid": {"rebalance": ["monthly"]}, "extra": 1}, BASE)


def test_the_shipped_sweep_has_at_least_100_valid_variants():
    sweep = load_sweep(SWEEPS_DIR / "multifactor_smallcap.yaml")
    raw = yaml.safe_load((SWEEPS_DIR / "multifactor_smallcap.yaml").read_text())
    assert (STRATEGIES_DIR / f"{raw['strategy']}.yaml").exists()
    assert len(sweep.variants) >= 100
    assert len({v.name for v in sweep.variants}) == len(sweep.variants)


# ------------------------------------------------------------------ a tiny market
D1, D2 = date(2024, 2, 1), date(2024, 3, 1)
DAYS = [date(2024, 1, 29) + timedelta(days=i) for i in range(45)]
GROWTH = {"A": 0.01, "B": -0.005, "C": 0.002}


def _prices() -> pl.DataFrame:
    rows = []
    for t, g in GROWTH.items():
        for i, d in enumerate(DAYS):
            p = 100.0 * (1 + g) ** i
            rows.append((t, d, p, p, None if i == 0 else g))
    cols = ["ticker", "date", "close", "adj_close", "daily_return"]
    return pl.DataFrame(rows, schema=cols, orient="row")


def _values() -> pl.DataFrame:
    # D1: A has the best momentum and roe; D2: B is best on both
    mom = {D1: {"A": 0.3, "B": 0.1, "C": 0.2}, D2: {"A": 0.1, "B": 0.3, "C": 0.2}}
    rows = [
        (d, t, "Tech", True, 100.0, 1e9, 1e6, 1e8, m, m)
        for d in (D1, D2)
        for t, m in mom[d].items()
    ]
    cols = ["rebalance_date", "ticker", "sector", "in_universe", "price", "market_cap",
            "avg_volume", "avg_dollar_volume", "momentum_12_1", "roe"]  # fmt: skip
    return pl.DataFrame(rows, schema=cols, orient="row")


def test_a_sweep_runs_each_variant_through_the_share_simulation():
    sweep = parse_sweep({"strategy": "tiny", "grid": {"portfolio.top_n": [1, 3]}}, BASE)
    result = run_sweep(
        sweep,
        _values(),
        {"monthly": [D1, D2]},
        _prices(),
        benchmark=None,
        model_for=lambda spec: TradingModel.free(),
        n_splits=2,
    )
    table = result.table.sort("top_n")
    p = {t: lambda i, g=g: (1 + g) ** i for t, g in GROWTH.items()}
    i1, i2, end = DAYS.index(D1), DAYS.index(D2), len(DAYS) - 1
    # top 1: A from D1's close to D2's close, then B to the end (no costs, fractional shares)
    top1 = p["A"](i2) / p["A"](i1) * p["B"](end) / p["B"](i2) - 1
    assert table["total_return"][0] == pytest.approx(top1, rel=1e-9)
    # top 3: all three, 1/3 each on D1, rebalanced to 1/3 each on D2
    first = sum(p[t](i2) / p[t](i1) for t in GROWTH) / 3
    second = sum(p[t](end) / p[t](i2) for t in GROWTH) / 3
    assert table["total_return"][1] == pytest.approx(first * second - 1, rel=1e-9)
    assert table["n_variants"].to_list() == [2, 2]
    assert table["pbo"].n_unique() == 1 and result.pbo is not None
    assert set(result.daily["variant"]) == {v.name for v in sweep.variants}
    assert table["deflated_sharpe_ratio"].is_not_null().all()


def test_a_variant_reusing_scores_of_more_dates_gets_the_weights_of_its_own_dates():
    from quant_pipeline.core.research.sweeps import variant_weights
    from quant_pipeline.core.strategies.scoring import score
    from quant_pipeline.core.strategies.target_weights import target_weights

    sweep = parse_sweep({"strategy": "tiny", "grid": {"portfolio.top_n": [2]}}, BASE)
    variant = sweep.variants[0]
    cache: dict = {}
    shared = variant_weights(variant, _values(), [D2], cache)
    alone, _ = target_weights(
        score(_values().filter(pl.col("rebalance_date") == D2), variant.spec)[0], variant.spec
    )
    assert shared.equals(alone)
    scored = [k for k in cache if isinstance(k, str)]  # one scoring, of every date
    assert len(scored) == 1 and cache[scored[0]]["rebalance_date"].n_unique() == 2

"""The research guard assets on tiny warehouse tables written by the test."""

from datetime import date, timedelta

import dagster as dg
import numpy as np
import polars as pl
import pytest

from quant_pipeline.defs.research_guards import research_multiple_testing
from quant_pipeline.defs.resources import WarehouseResource
from quant_pipeline.storage.warehouse import Warehouse


def _daily(n_days: int = 64) -> pl.DataFrame:
    rng = np.random.default_rng(5)
    days = [date(2022, 1, 3) + timedelta(days=i) for i in range(n_days)]
    frames = [
        pl.DataFrame(
            {
                "strategy": name,
                "date": days,
                "portfolio_return": rng.normal(drift, 0.01, n_days),
                "benchmark_return": np.linspace(-0.002, 0.003, n_days),
            }
        )
        for name, drift in (("a", 0.001), ("b", 0.0), ("c", -0.0005))
    ]
    return pl.concat(frames)


def test_multiple_testing_asset_writes_one_row_per_strategy_with_pbo_and_a_chart(tmp_path):
    path = tmp_path / "quant.duckdb"
    Warehouse(path).replace_table("backtest.daily", _daily())
    result = dg.materialize(
        [research_multiple_testing], resources={"warehouse": WarehouseResource(path=str(path))}
    )
    assert result.success
    table = Warehouse(path).read_table("research.multiple_testing")
    assert sorted(table["strategy"]) == ["a", "b", "c"]
    assert table["n_trials"].to_list() == [3, 3, 3]
    assert table["pbo"].n_unique() == 1 and 0.0 <= table["pbo"][0] <= 1.0
    assert (table["deflated_sharpe_ratio"] <= table["probabilistic_sharpe_ratio"]).all()
    meta = result.asset_materializations_for_node("research__multiple_testing")[0].metadata
    assert "data:image/png;base64" in meta["pbo_chart"].value
    assert meta["dagster/row_count"].value == 3
    assert table["stated_sharpe"].to_list() == pytest.approx([1.0] * 3)


# ------------------------------------------------------------ sweep and walk-forward assets
TINY = {
    "name": "tiny",
    "rebalance": "monthly",
    "scoring": {"method": "weighted_zscore", "factors": {"momentum_12_1": {"weight": 1.0}}},
    "portfolio": {"top_n": 1, "weighting": "equal"},
}


def _tiny_warehouse(path) -> None:
    rng = np.random.default_rng(11)
    days = [
        d for d in (date(2020, 1, 1) + timedelta(days=i) for i in range(900)) if d.weekday() < 5
    ]
    tickers = ["A", "B", "C", "D"]
    rets = rng.normal(0.0004, 0.01, size=(len(days), len(tickers)))
    prices = pl.concat(
        pl.DataFrame(
            {"ticker": t, "date": days, "close": 50 * np.cumprod(1 + rets[:, j])}
        ).with_columns(adj_close=pl.col("close"))
        for j, t in enumerate(tickers)
    )
    firsts = (
        pl.DataFrame({"date": days})
        .group_by(pl.col("date").dt.truncate("1mo"))
        .agg(pl.col("date").min().alias("rebalance_date"))
    )
    dates = firsts["rebalance_date"].sort().to_list()[1:]
    values = pl.DataFrame(
        [
            (d, t, "Tech", True, 50.0, 1e9, 1e6, 5e7, float(rng.normal()))
            for d in dates
            for t in tickers
        ],
        schema=[
            "rebalance_date",
            "ticker",
            "sector",
            "in_universe",
            "price",
            "market_cap",
            "avg_volume",
            "avg_dollar_volume",
            "momentum_12_1",
        ],  # fmt: skip
        orient="row",
    )
    bench = pl.DataFrame(
        {"date": days, "benchmark": "equal_weight", "return": rets.mean(axis=1), "is_primary": True}
    )
    wh = Warehouse(path)
    wh.replace_table("curated.prices", prices)
    wh.replace_table("factors.values", values)
    wh.replace_table(
        "factors.rebalance_dates", pl.DataFrame({"frequency": "monthly", "rebalance_date": dates})
    )
    wh.replace_table("backtest.benchmarks", bench)


def test_sweep_and_walk_forward_assets_write_their_tables_and_charts(tmp_path, monkeypatch):
    from quant_pipeline.core.research.sweeps import parse_sweep
    from quant_pipeline.defs import research_guards
    from quant_pipeline.defs.resources import MarketDataResource

    sweep = parse_sweep(
        {
            "strategy": "tiny",
            "grid": {"portfolio.top_n": [1, 2, 3], "portfolio.weighting": ["equal", "score"]},
            "heatmap": {"x": "top_n", "y": "weighting"},
            "walk_forward": {"train_years": 1, "test_years": 1},
        },
        TINY,
    )
    monkeypatch.setattr(research_guards, "load_sweeps", lambda: {sweep.name: sweep})
    monkeypatch.setenv("QUANT_PIPELINE_SWEEP_WORKERS", "2")  # the process pool inside a step
    monkeypatch.setattr(
        research_guards, "runnable_strategies", lambda market, warehouse: {"tiny": None}
    )
    path = tmp_path / "quant.duckdb"
    _tiny_warehouse(path)
    result = dg.materialize(
        [research_guards.research_sweep, research_guards.research_walk_forward],
        resources={
            "warehouse": WarehouseResource(path=str(path)),
            "market": MarketDataResource(source="demo", demo_end="2022-06-17"),
        },
    )
    assert result.success
    wh = Warehouse(path)
    table = wh.read_table("research.sweep")
    assert table.height == 6 and set(table["weighting"]) == {"equal", "score"}
    assert table["pbo"].n_unique() == 1
    windows = wh.read_table("research.walk_forward")
    assert windows.height == 2  # tests 2021 and 2022 after one training year each
    assert set(windows["variant"]) <= set(table["variant"])
    assert windows["top_n"].is_not_null().all()
    curves = wh.read_table("research.walk_forward_curves")
    assert set(curves["curve"]) == {"walk_forward", "in_sample_best"}
    sweep_meta = result.asset_materializations_for_node("research_sweep")[0].metadata
    assert "data:image/png;base64" in sweep_meta[f"{sweep.name}_heatmap"].value
    wf_meta = result.asset_materializations_for_node("research_walk_forward")[0].metadata
    assert "data:image/png;base64" in wf_meta[f"{sweep.name}_curves"].value


def test_the_covariance_check_audits_a_risk_parity_strategy(tmp_path, monkeypatch):
    from quant_pipeline.core.strategies.spec import parse_strategy
    from quant_pipeline.core.strategies.weighting import PriceHistory, WeightingRules, reweight
    from quant_pipeline.defs import research_guards
    from quant_pipeline.defs.resources import MarketDataResource

    doc = {**TINY, "portfolio": {"top_n": 3, "weighting": "risk_parity", "lookback_days": 60}}
    spec = parse_strategy(doc)
    monkeypatch.setattr(
        research_guards, "runnable_strategies", lambda market, warehouse: {"tiny": spec}
    )
    path = tmp_path / "quant.duckdb"
    _tiny_warehouse(path)
    wh = Warehouse(path)
    prices = wh.read_table("curated.prices")
    d = date(2021, 6, 1)
    equal = pl.DataFrame(
        {
            "strategy": "tiny",
            "rebalance_date": [d] * 3,
            "ticker": ["A", "B", "C"],
            "sector": "Tech",
            "weight": 1 / 3,
            "score": [3.0, 2.0, 1.0],
            "rank": [1, 2, 3],
        }
    )
    weights, _ = reweight(equal, WeightingRules.from_spec(spec), history=PriceHistory(prices))
    wh.replace_table("portfolio.target_weights", weights)
    result = dg.materialize(
        [research_guards.covariance_uses_only_prior_prices],
        resources={
            "warehouse": WarehouseResource(path=str(path)),
            "market": MarketDataResource(source="demo", demo_end="2022-06-17"),
        },
        selection=dg.AssetSelection.checks(research_guards.covariance_uses_only_prior_prices),
    )
    evaluations = result.get_asset_check_evaluations()
    assert [e.passed for e in evaluations] == [True]
    assert evaluations[0].metadata["dates_checked"].value == 1


def test_the_exposures_asset_writes_beta_tilts_and_sector_weights(tmp_path):
    from quant_pipeline.defs import research_guards
    from quant_pipeline.defs.resources import MarketDataResource

    path = tmp_path / "quant.duckdb"
    _tiny_warehouse(path)
    wh = Warehouse(path)
    d = date(2021, 6, 1)
    wh.replace_table(
        "portfolio.target_weights",
        pl.DataFrame(
            {
                "strategy": "tiny",
                "rebalance_date": [d, d],
                "ticker": ["A", "B"],
                "sector": "Tech",
                "weight": [0.5, 0.5],
                "score": [2.0, 1.0],
                "rank": [1, 2],
            }
        ),
    )
    values = wh.read_table("factors.values").with_columns(earnings_yield=pl.lit(0.05))
    wh.replace_table("factors.values", values)
    result = dg.materialize(
        [research_guards.research_exposures],
        resources={"warehouse": WarehouseResource(path=str(path)), "market": MarketDataResource()},
    )
    assert result.success
    table = wh.read_table("research.exposures")
    assert table.height == 1 and table["beta_coverage"][0] == pytest.approx(1.0)
    assert table["beta"][0] is not None
    sectors = wh.read_table("research.sector_exposures")
    assert sectors["portfolio_weight"].to_list() == pytest.approx([1.0])
    assert sectors["universe_weight"].to_list() == pytest.approx([1.0])


# ------------------------------------------------ a restricted run replaces only its own rows
OWNED_KEYS = [  # (table, key column, the key of the strategy the restricted run does not own)
    ("research.sweep", "sweep", "momentum_sweep"),
    ("research.sweep_daily", "sweep", "momentum_sweep"),
    ("research.walk_forward", "sweep", "momentum_sweep"),
    ("research.walk_forward_curves", "sweep", "momentum_sweep"),
    ("research.exposures", "strategy", "momentum_12_1"),
    ("research.sector_exposures", "strategy", "momentum_12_1"),
]


def _two_strategy_weights(wh: Warehouse) -> None:
    dates = wh.read_table("factors.rebalance_dates")["rebalance_date"].sort().to_list()[12:]
    wh.replace_table(
        "portfolio.target_weights",
        pl.DataFrame(
            [
                (name, d, t, "Tech", 0.5, 1.0, 1)
                for name, held in (("magic_formula", "AB"), ("momentum_12_1", "CD"))
                for d in dates
                for t in held
            ],
            schema=["strategy", "rebalance_date", "ticker", "sector", "weight", "score", "rank"],
            orient="row",
        ),
    )


def _guard_rows(wh: Warehouse, table: str, column: str, key: str) -> pl.DataFrame:
    frame = wh.read_table(table, filters={column: key})
    return frame.sort(frame.columns)


def test_a_restricted_run_replaces_only_its_strategies_rows_of_the_research_guard_tables(
    tmp_path, monkeypatch
):
    from quant_pipeline.core.research.sweeps import parse_sweep
    from quant_pipeline.defs import research_guards
    from quant_pipeline.defs.resources import MarketDataResource

    grid = {"portfolio.top_n": [1, 2], "portfolio.weighting": ["equal", "score"]}
    bases = (("value_sweep", "magic_formula"), ("momentum_sweep", "momentum_12_1"))
    sweeps = {
        name: parse_sweep(
            {
                "name": name,
                "strategy": strategy,
                "grid": grid,
                "heatmap": {"x": "top_n", "y": "weighting"},
                "walk_forward": {"train_years": 1, "test_years": 1},
            },
            TINY,
        )  # fmt: skip
        for name, strategy in bases
    }
    monkeypatch.setattr(research_guards, "load_sweeps", lambda: sweeps)
    monkeypatch.setattr(
        research_guards,
        "runnable_strategies",
        lambda market, warehouse: dict.fromkeys(
            market.settings().strategies or ("magic_formula", "momentum_12_1")
        ),
    )
    path = tmp_path / "quant.duckdb"
    _tiny_warehouse(path)
    wh = Warehouse(path)
    _two_strategy_weights(wh)
    values = wh.read_table("factors.values").with_columns(earnings_yield=pl.lit(0.05))
    wh.replace_table("factors.values", values)
    assets = [
        research_guards.research_sweep,
        research_guards.research_walk_forward,
        research_guards.research_exposures,
    ]

    def run(strategies):
        market = MarketDataResource(source="demo", demo_end="2022-06-17", strategies=strategies)
        resources = {"warehouse": WarehouseResource(path=str(path)), "market": market}
        assert dg.materialize(assets, resources=resources).success

    run(None)  # every strategy
    kept = {t: _guard_rows(wh, t, c, k) for t, c, k in OWNED_KEYS}
    assert all(frame.height for frame in kept.values())
    own = wh.read_table("research.sweep", filters={"sweep": "value_sweep"})
    # new prices: a recomputation of any strategy's rows would change them
    prices = wh.read_table("curated.prices")
    noise = np.random.default_rng(3).normal(1.0, 0.01, prices.height)
    wh.replace_table("curated.prices", prices.with_columns(adj_close=pl.col("adj_close") * noise))

    run(["magic_formula"])
    for table, column, key in OWNED_KEYS:
        assert _guard_rows(wh, table, column, key).equals(kept[table]), table
    rewritten = wh.read_table("research.sweep", filters={"sweep": "value_sweep"})
    assert rewritten.height == own.height  # replaced, not appended
    assert not rewritten.sort("variant").equals(own.sort("variant"))  # recomputed on new prices
    assert set(wh.read_table("research.exposures")["strategy"]) == {
        "magic_formula",
        "momentum_12_1",
    }


def test_the_attribution_asset_writes_each_strategys_terms_stamped_with_its_returns(tmp_path):
    from quant_pipeline.core.data.dataset_version import fingerprints
    from quant_pipeline.defs import research_guards

    path = tmp_path / "quant.duckdb"
    _tiny_warehouse(path)
    wh = Warehouse(path)
    rng = np.random.default_rng(2)
    # twelve names of their own (random walks) in two sectors, so each style forms quintiles
    base = wh.read_table("curated.prices").filter(pl.col("ticker") == "A").sort("date")
    prices = pl.concat(
        base.with_columns(
            ticker=pl.lit(f"N{i:02d}"),
            close=pl.Series(50 * np.cumprod(1 + rng.normal(0.0003, 0.012, base.height))),
        ).with_columns(adj_close=pl.col("close"), daily_return=pl.col("close").pct_change())
        for i in range(12)
    )
    wh.replace_table("curated.prices", prices)
    dates = wh.read_table("factors.rebalance_dates")["rebalance_date"].to_list()
    styles = ["market_cap", "earnings_yield", "momentum_12_1", "roe", "roa", "gross_margin"]
    values = pl.DataFrame(
        [
            (d, f"N{i:02d}", "Tech" if i % 2 else "Energy", *rng.normal(size=6).tolist())
            for d in dates
            for i in range(12)
        ],
        schema=["rebalance_date", "ticker", "sector", *styles],
        orient="row",
    ).with_columns(
        in_universe=pl.lit(True),
        price=pl.lit(50.0),
        market_cap=pl.col("market_cap").exp() * 1e9,
        debt_to_equity=pl.lit(1.0),  # no spread: quality is the mean of the other three
    )
    wh.replace_table("factors.values", values)
    days = wh.read_table("backtest.benchmarks").sort("date")
    daily = pl.DataFrame(
        {
            "strategy": "tiny",
            "date": days["date"],
            "portfolio_return": days["return"] + rng.normal(0.0002, 0.003, days.height),
            "benchmark_return": days["return"],
        }
    )
    wh.replace_table("backtest.daily", daily)
    wh.replace_table(
        "backtest.metric_settings", pl.DataFrame({"setting": ["risk_free_rate"], "value": [0.0]})
    )
    result = dg.materialize(
        [research_guards.research_attribution],
        resources={"warehouse": WarehouseResource(path=str(path))},
    )
    assert result.success
    table = wh.read_table("research.attribution")
    assert set(table["kind"]) == {"alpha", "market", "sector", "factor"}
    assert table["contribution"].sum() == pytest.approx(table["excess_return"][0], abs=1e-12)
    stamp = fingerprints(daily, "strategy", ("date", "portfolio_return", "benchmark_return"))
    assert set(table["daily_fingerprint"]) == {stamp["fingerprint"][0]}
    returns = wh.read_table("research.attribution_returns")
    assert set(returns["series"]) >= {"Tech", "Energy", "momentum", "value", "size", "quality"}


class _Reader:
    """A stand-in for a step's table reader over frames held in memory."""

    def __init__(self, tables: dict[str, pl.DataFrame]) -> None:
        self.tables = tables

    def __call__(self, table: str, columns=None) -> pl.DataFrame:
        return self.tables[table]

    def has_table(self, table: str) -> bool:
        return table in self.tables


def _pages_inputs():
    from quant_pipeline.core.data.dataset_version import fingerprints

    d = date(2021, 6, 1)
    weights = pl.DataFrame(
        {"strategy": "tiny", "rebalance_date": d, "ticker": ["A", "B"], "weight": [0.5, 0.5]}
    )
    daily = pl.DataFrame(
        {
            "strategy": "tiny",
            "date": [d, d + timedelta(days=1)],
            "portfolio_return": [0.0, 0.01],
            "benchmark_return": [0.0, 0.02],
        }
    )
    w_stamp = fingerprints(weights, "strategy", ("rebalance_date", "ticker", "weight"))
    d_stamp = fingerprints(daily, "strategy", ("date", "portfolio_return", "benchmark_return"))
    exposures = pl.DataFrame(
        {"strategy": "tiny", "rebalance_date": [d], "n_names": [2], "beta": [1.0],
         "beta_coverage": [1.0], "size_tilt": [0.1], "value_tilt": [0.2],
         "momentum_tilt": [0.3], "quality_tilt": [0.4],
         "weights_fingerprint": w_stamp["fingerprint"]}
    )  # fmt: skip
    sectors = pl.DataFrame(
        {"strategy": "tiny", "rebalance_date": [d], "sector": ["Tech"],
         "portfolio_weight": [1.0], "universe_weight": [1.0], "active_weight": [0.0],
         "weights_fingerprint": w_stamp["fingerprint"]}
    )  # fmt: skip
    attribution = pl.DataFrame(
        {"strategy": "tiny", "term": ["alpha"], "kind": ["alpha"], "coefficient": [0.0],
         "t_stat": [0.0], "annual_mean": [None], "contribution": [0.0], "excess_return": [0.0],
         "r_squared": [0.5], "adj_r_squared": [0.5], "n_days": [2], "start": [d],
         "end": [d], "daily_fingerprint": d_stamp["fingerprint"]}
    )  # fmt: skip
    tables = {
        "research.exposures": exposures,
        "research.sector_exposures": sectors,
        "research.attribution": attribution,
    }
    return daily, weights, tables


def test_research_sections_are_shown_only_for_the_weights_and_returns_they_were_made_from():
    from quant_pipeline.defs.research_pages import ResearchPages

    daily, weights, tables = _pages_inputs()
    fresh = ResearchPages(_Reader(tables), daily, weights, sweeps={}).exposures("tiny")
    assert fresh.missing == () and fresh.exposures.height == 1 and fresh.attribution.height == 1
    assert fresh.tilts_chart.startswith(b"\x89PNG")
    # the backtest moved on: new weights, new returns -> both parts left out, and said so
    moved = ResearchPages(
        _Reader(tables),
        daily.with_columns(portfolio_return=pl.col("portfolio_return") + 0.001),
        weights.with_columns(weight=pl.Series([0.6, 0.4])),
        sweeps={},
    ).exposures("tiny")
    assert moved.exposures is None and moved.attribution is None
    assert [m.split(":")[0] for m in moved.missing] == [
        "Beta, tilts and sector weights",
        "Returns-based attribution",
    ]
    assert all("left out" in m for m in moved.missing)
    never = ResearchPages(_Reader({}), daily, weights, sweeps={}).exposures("tiny")
    assert all("not computed yet" in m for m in never.missing)


def test_a_swept_strategys_section_needs_the_sweep_run_on_the_same_data():
    from quant_pipeline.core.research.sweeps import parse_sweep
    from quant_pipeline.defs.research_pages import ResearchPages

    daily, weights, tables = _pages_inputs()
    sweep = parse_sweep({"strategy": "tiny", "grid": {"portfolio.top_n": [1, 2]}}, TINY)
    assert sweep.heatmap[:2] == ("top_n", "top_n")  # one parameter: a diagonal heatmap
    rows = pl.DataFrame(
        {"sweep": sweep.name, "variant": [v.name for v in sweep.variants], "top_n": [1, 2],
         "sharpe_ratio": [0.5, 0.9], "sharpe_ratio_shared_dates": [0.5, 0.9],
         "deflated_sharpe_ratio": [0.3, 0.6], "expected_maximum_sharpe": [0.4, 0.4],
         "pbo": [0.25, 0.25], "n_variants": [2, 2], "dataset_version": "v1"}
    )  # fmt: skip
    pages = ResearchPages(
        _Reader({**tables, "research.sweep": rows}), daily, weights, {sweep.name: sweep}
    )
    same = pages.multiple_testing("tiny", "v1")
    assert same.missing is None and same.table.height == 2 and same.heatmap.startswith(b"\x89PNG")
    assert "other curated data" in pages.multiple_testing("tiny", "v2").missing
    assert pages.multiple_testing("not_swept", "v1") is None

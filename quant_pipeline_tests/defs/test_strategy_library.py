"""Every shipped strategy kind, the blend and the research assets on a small demo market."""

import polars as pl
import pytest

from quant_pipeline.config.strategies import load_strategies
from quant_pipeline.storage.warehouse import Warehouse


@pytest.fixture(scope="module")
def warehouse(demo_chain):
    return Warehouse(demo_chain.path)


def test_every_strategy_with_positions_and_the_benchmark_are_compared(warehouse):
    comparison = warehouse.read_table("backtest.comparison")
    compared = set(comparison["strategy"])
    weights = warehouse.read_table("portfolio.target_weights")
    with_positions = set(weights.filter(pl.col("weight") > 0)["strategy"])
    shipped = load_strategies()
    blends = {n for n, s in shipped.items() if s.kind == "blend"}
    # a strategy with no positions is still a row, flagged and without metrics; each row carries
    # its benchmark over its own dates, and the benchmark row is in the common-window table
    left_out = comparison.filter(
        pl.col("flags").fill_null("").str.starts_with("never fired (not backtested)")
    )
    assert compared - set(left_out["strategy"]) == with_positions | blends
    assert left_out["cagr"].is_null().all()
    assert compared == set(shipped)
    common = warehouse.read_table("backtest.comparison_common_window")
    assert set(common["strategy"]) == (compared - set(left_out["strategy"])) | {"benchmark"}
    assert common["start"].n_unique() == 1 and common["end"].n_unique() == 1
    # all but the strict cup-with-handle rule trade on 60 names over nine years; the LEAN magic
    # formula's ROA >= 25% passes about 0.1% of demo rows (docs/strategies.md), none of 60 names
    traded = compared - set(left_out["strategy"])
    assert set(shipped) - {"cup_and_handle", "magic_formula_lean"} <= traded


def test_signal_strategies_trade_on_daily_dates_with_cash_allowed(warehouse):
    weights = warehouse.read_table("portfolio.target_weights")
    days = set(warehouse.read_table("curated.prices", columns=["date"])["date"])
    signal = weights.filter(pl.col("strategy").is_in(["trend_following", "canslim"]))
    assert signal["rebalance_date"].n_unique() > 50
    assert set(signal["rebalance_date"]) <= days
    sums = weights.group_by("strategy", "rebalance_date").agg(pl.col("weight").sum())
    assert sums["weight"].max() <= 1 + 1e-9
    events = warehouse.read_table("factors.signal_events")
    assert {"trend_following", "canslim", "livermore_breakout"} <= set(events["strategy"])


def test_signal_strategies_keep_each_sector_within_30_percent(warehouse):
    signals = [n for n, s in load_strategies().items() if s.kind == "signal"]
    report = warehouse.read_table("portfolio.constraint_report").filter(
        pl.col("strategy").is_in(signals)
    )
    assert {"trend_following", "canslim", "livermore_breakout"} <= set(report["strategy"])
    assert report["sector_cap"].unique().to_list() == [0.3]
    assert report["cap_met"].all() and report["max_sector_weight"].max() <= 0.3 + 1e-9
    # 20 slots of 1/20: at most 6 names of one sector in any book
    weights = warehouse.read_table("portfolio.target_weights").filter(
        pl.col("strategy").is_in(signals) & (pl.col("weight") > 0)
    )
    per_sector = weights.group_by("strategy", "rebalance_date", "sector").len()["len"].max()
    assert per_sector <= 6


def test_the_staggered_magic_formula_holds_about_24_names_after_a_year(warehouse):
    w = warehouse.read_table("portfolio.target_weights").filter(
        (pl.col("strategy") == "magic_formula_staggered") & (pl.col("weight") > 0)
    )
    held = w.group_by("rebalance_date").len().sort("rebalance_date")["len"]
    assert held[0] <= 2 and held.max() <= 24
    assert w["weight"].unique().to_list() == [pytest.approx(1 / 24)]


def test_blend_contributions_add_up_to_the_blend_return_in_backtest_daily(warehouse):
    attribution = warehouse.read_table("backtest.blend_attribution")
    daily = warehouse.read_table("backtest.daily").filter(pl.col("strategy") == "blend_core")
    total = daily.sort("date")["equity"][-1] - 1
    assert set(attribution["sleeve"]) == {
        "magic_formula",
        "multifactor_smallcap",
        "momentum_12_1",
        "trend_following",
    }
    assert attribution["contribution"].sum() == pytest.approx(total)
    assert attribution["blend_return"].to_list() == pytest.approx([total] * 4)


def test_research_tables_cover_factors_strategies_and_luck(warehouse):
    summary = warehouse.read_table("research.factor_summary")
    assert {"momentum_12_1", "roe", "strategy:magic_formula"} <= set(summary["factor"])
    assert summary["mean_ic"].is_between(-1, 1).all()
    ic = warehouse.read_table("research.factor_ic")
    assert ic.height > 0 and ic["ic"].is_between(-1, 1).all()
    quantiles = warehouse.read_table("research.factor_quantiles")
    assert set(quantiles["quantile"]) == {1, 2, 3, 4, 5}
    luck = warehouse.read_table("research.luck")
    factor_kinds = {n for n, s in load_strategies().items() if s.kind == "factor"}
    assert set(luck["strategy"]) == factor_kinds
    assert luck["sharpe_percentile"].is_between(0, 100).all()
    assert (luck["oracle_sharpe"] > luck["sharpe"]).all()


def test_lean_statistics_cover_every_trading_strategy_with_its_order_count(warehouse):
    from quant_pipeline.core.backtest.lean_statistics import LEAN_STATISTICS

    lean = warehouse.read_table("backtest.lean_statistics")
    fills = warehouse.read_table("backtest.fills", columns=["strategy"])
    orders = dict(fills.group_by("strategy").len().rows())
    assert set(lean["strategy"]) == set(orders)  # blends place no orders of their own
    for name, count in orders.items():
        rows = lean.filter(pl.col("strategy") == name)
        assert rows["statistic"].to_list() == list(LEAN_STATISTICS)
        got = dict(rows.select("statistic", "value").iter_rows())
        assert got["Total Orders"] == count
        assert got["Estimated Strategy Capacity"] >= 0
    from quant_pipeline.settings import from_env

    settings = dict(warehouse.read_table("backtest.metric_settings").rows())
    assert settings == {
        "risk_free_rate": from_env().risk_free_rate,
        "periods_per_year": 252.0,
        "common_window_tolerance_days": float(from_env().common_window_tolerance_days),
    }

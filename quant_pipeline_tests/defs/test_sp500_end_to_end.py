"""The whole chain on the real S&P 500 files (``../shared/data/sp500``), as ``make demo`` runs it.

Skipped when the shared folder is absent. About 15 s: the full dataset (505 tickers, 2013-2018).
"""

import math

import dagster as dg
import polars as pl
import pytest

from quant_pipeline.config.strategies import load_strategies
from quant_pipeline.definitions import all_assets, asset_checks
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.storage.warehouse import Warehouse
from quant_pipeline_tests.defs.test_end_to_end import CONTRACT_TABLES


@pytest.fixture(scope="module")
def sp500_run(sp500_dir, tmp_path_factory) -> tuple[dg.ExecuteInProcessResult, Warehouse]:
    path = tmp_path_factory.mktemp("sp500") / "quant.duckdb"
    resources = {
        "warehouse": WarehouseResource(path=str(path)),
        "market": MarketDataResource(source="files", data_dir=str(sp500_dir)),
    }
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [*all_assets, *asset_checks], resources=resources, instance=instance
        )
    assert result.success
    return result, Warehouse(path)


@pytest.fixture(scope="module")
def sp500_warehouse(sp500_run) -> Warehouse:
    return sp500_run[1]


LEAN_REASON = (
    "exchange unknown for all 505 tickers; add an exchange column to securities.csv, "
    "see docs/data_sources.md"
)


def test_the_lean_exchange_rule_on_a_folder_without_exchanges_is_reported_not_silent(sp500_run):
    from quant_pipeline.app.cli import data_notes

    result, warehouse = sp500_run
    labels = warehouse.read_table("backtest.labels", filters={"strategy": "magic_formula_lean"})
    assert dict(labels.select("label", "value").iter_rows()) == {"skipped": LEAN_REASON}
    comparison = warehouse.read_table(
        "backtest.comparison", filters={"strategy": "magic_formula_lean"}
    )
    assert comparison["flags"].to_list() == [f"never fired (not backtested): {LEAN_REASON}"]
    assert comparison["cagr"].to_list() == [None]
    # the asset pages: factors/scores and backtest/daily list it with the reason
    pages = {
        e.asset_key: e.event_specific_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    for key in (["factors", "scores"], ["backtest", "daily"]):
        skipped = pages[dg.AssetKey(key)]["skipped_strategies"].data
        assert skipped["magic_formula_lean"] == LEAN_REASON, key
    # the run output (quant-pipeline run prints these lines under the comparison)
    assert f"  magic_formula_lean: {LEAN_REASON}" in data_notes(warehouse)


def test_every_contract_table_has_rows_on_the_sp500_files(sp500_warehouse):
    empty = [t for t in CONTRACT_TABLES if sp500_warehouse.row_count(t) == 0]
    assert not empty, f"empty contract tables: {empty}"
    # 505 tickers of prices, 2013-02-08 .. 2018-02-07, every ticker curated
    prices = sp500_warehouse.read_table("curated.prices", columns=["ticker", "date"])
    assert prices["ticker"].n_unique() == 505
    assert (str(prices["date"].min()), str(prices["date"].max())) == ("2013-02-08", "2018-02-07")


def test_annual_fundamentals_without_report_dates_become_usable_90_days_after_period_end(
    sp500_warehouse,
):
    fundamentals = sp500_warehouse.read_table("curated.fundamentals")
    assert fundamentals["period_type"].unique().to_list() == ["A"]
    assert fundamentals["report_date"].null_count() == fundamentals.height
    lag = (fundamentals["available_at"] - fundamentals["period_end"]).dt.total_days()
    assert lag.unique().to_list() == [90]


def test_vendor_prices_without_adj_close_are_adjusted_to_their_close(sp500_warehouse):
    raw = sp500_warehouse.read_table("raw.prices", columns=["adj_close"])
    assert raw["adj_close"].null_count() == raw.height  # the vendor file has no adjusted close
    curated = sp500_warehouse.read_table("curated.prices", columns=["close", "adj_close"])
    # no corporate actions in the folder: adjusted close falls back to the close
    assert (curated["adj_close"] == curated["close"]).all()


def test_membership_tickers_match_the_price_tickers_through_aliases(sp500_warehouse):
    members = set(sp500_warehouse.read_table("curated.membership")["ticker"].to_list())
    priced = set(sp500_warehouse.read_table("curated.prices", columns=["ticker"])["ticker"])
    assert priced <= members  # PCLN (prices) and not BKNG (membership file) among them
    assert "PCLN" in members


def test_backtest_metrics_are_finite_and_plausible_for_us_large_caps(sp500_warehouse):
    metrics = sp500_warehouse.read_table("backtest.metrics")
    wide = {
        (s, m): v
        for s, m, v in metrics.select("strategy", "metric", "value").iter_rows()
        if m in {"cagr", "annual_volatility", "sharpe_ratio", "max_drawdown"}
    }
    strategies = set(metrics["strategy"].unique())
    assert {"magic_formula", "multifactor_smallcap", "benchmark"} <= strategies
    assert len(wide) == 4 * len(strategies)
    assert all(math.isfinite(v) for v in wide.values())
    # Equal-weight S&P 500 members, price return (the files carry no dividends), 2014-2018:
    # RSP rose ~8% a year with ~12% volatility over the same years.
    assert 0.05 < wide[("benchmark", "cagr")] < 0.15
    assert 0.08 < wide[("benchmark", "annual_volatility")] < 0.20
    for strategy in strategies:
        assert -0.6 < wide[(strategy, "max_drawdown")] < 0


def test_target_weights_sum_to_one_on_every_sp500_rebalance(sp500_warehouse):
    # factor strategies are fully invested; staggered ones fill their book over a year and
    # signal ones hold cash when fewer names signal than they have slots
    factor = [n for n, s in load_strategies().items() if s.kind == "factor"]
    sums = (
        sp500_warehouse.read_table("portfolio.target_weights")
        .filter(pl.col("strategy").is_in(factor))
        .group_by("strategy", "rebalance_date")
        .agg(pl.col("weight").sum())
    )
    assert sums.height > 0
    assert (sums["weight"] - 1).abs().max() < 1e-9


def test_a_holdings_file_by_company_name_produces_orders_and_an_ambiguous_name_is_refused(
    sp500_warehouse, tmp_path, monkeypatch, capsys
):
    from quant_pipeline.app.cli import main

    monkeypatch.setenv("QUANT_PIPELINE_WAREHOUSE", str(sp500_warehouse.path))
    monkeypatch.setenv("QUANT_PIPELINE_PORTFOLIOS", str(tmp_path / "portfolios.yaml"))
    holdings = tmp_path / "spreadsheet.csv"
    holdings.write_text(
        "Stock Name,Number of Shares,Dollar amount invested\n"
        'apple inc,10,"$1,200.00"\n'
        "The Coca-Cola Co.,40,1800\n"
        "3M,5,900\n"
    )
    args = ["orders", "--strategy", "magic_formula", "--as-of", "2018-02-07", "--no-packet"]
    assert main([*args, "--holdings", str(holdings), "--cash", "1000"]) == 0
    out = capsys.readouterr().out
    # the three named positions are sold (magic_formula does not hold them) as tickers
    for ticker in ("AAPL", "KO", "MMM"):
        assert ticker in out
    holdings.write_text("Stock Name,Number of Shares\nAlphabet Inc,3\n")
    assert main([*args, "--holdings", str(holdings)]) == 1
    err = capsys.readouterr().err
    assert "name 'Alphabet Inc' is ambiguous: 2 companies match: " in err
    assert "GOOG (Alphabet Inc Class C), GOOGL (Alphabet Inc Class A)" in err


def test_aapl_and_nflx_market_caps_are_split_consistent_on_every_rebalance_date(
    sp500_warehouse, sp500_dir
):
    from quant_pipeline_tests.sources.test_sp500_share_basis import reference_caps

    values = sp500_warehouse.read_table(
        "factors.values", columns=["rebalance_date", "ticker", "market_cap"]
    )
    dates = values["rebalance_date"].unique().sort().to_list()
    for ticker in ("AAPL", "NFLX"):
        got = dict(
            values.filter(pl.col("ticker") == ticker)
            .select("rebalance_date", "market_cap")
            .iter_rows()
        )
        expected = reference_caps(sp500_dir, ticker, dates)
        checked = [d for d, ref in expected.items() if ref is not None]
        assert len(checked) >= 30
        for d in checked:
            assert math.isclose(got[d], expected[d], rel_tol=0.10), (ticker, d)


def test_suspect_moves_are_listed_and_counted_in_the_labels(sp500_warehouse):
    moves = sp500_warehouse.read_table("curated.suspect_moves")
    assert {("BAX", "2015-07-01"), ("DISCA", "2014-08-07")} <= {
        (t, str(d)) for t, d in moves.select("ticker", "date").iter_rows()
    }
    labels = sp500_warehouse.read_table("backtest.labels").filter(
        pl.col("label") == "suspect_moves"
    )
    assert labels.height >= 1
    assert labels["value"].str.starts_with(f"{moves.height} one-day moves of 40%").all()


def test_a_tear_sheet_names_the_positions_held_through_a_suspect_move(sp500_warehouse):
    from pathlib import Path

    from quant_pipeline.core.data.suspect_moves import held_through

    held = held_through(
        sp500_warehouse.read_table("backtest.trades"),
        sp500_warehouse.read_table("curated.suspect_moves"),
    )
    assert held.height >= 1, "some S&P strategy holds a name through a spin-off or share dividend"
    sheets = dict(
        sp500_warehouse.read_table("backtest.tear_sheets").select("strategy", "path").iter_rows()
    )
    for strategy in held["strategy"].unique().to_list():
        page = Path(sheets[strategy]).read_text(encoding="utf-8")
        section = page.split("<h2>Suspect moves held</h2>")[1]
        for ticker in held.filter(pl.col("strategy") == strategy)["ticker"].to_list():
            assert f">{ticker}<" in section, (strategy, ticker)

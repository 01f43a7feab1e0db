"""The whole chain on a small demo market, materialized into a temporary warehouse."""

import json
import shutil
from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from quant_pipeline.app.recommendation import data_version
from quant_pipeline.config.strategies import load_strategies
from quant_pipeline.definitions import all_assets, asset_checks
from quant_pipeline.defs.benchmarks import benchmarks
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.storage.warehouse import Warehouse
from quant_pipeline_tests.pins import DEMO_END_ISO

CONTRACT_TABLES = [
    "raw.prices",
    "raw.fundamentals",
    "raw.securities",
    "curated.prices",
    "curated.fundamentals",
    "curated.securities",
    "factors.scores",
    "portfolio.target_weights",
    "backtest.daily",
    "backtest.metrics",
    "backtest.trades",
]


def _materialize(path):
    resources = {
        "warehouse": WarehouseResource(path=str(path)),
        "market": MarketDataResource(
            source="demo", demo_tickers=150, demo_start="2016-01-01", demo_end=DEMO_END_ISO
        ),
    }
    with dg.DagsterInstance.ephemeral() as instance, pytest.MonkeyPatch.context() as env:
        env.setenv("QUANT_PIPELINE_REPORTS_DIR", str(path.parent / "reports"))
        result = dg.materialize(
            [*all_assets, *asset_checks], resources=resources, instance=instance
        )
    assert result.success
    return Warehouse(path)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    path = tmp_path_factory.mktemp("e2e") / "quant.duckdb"
    warehouse = _materialize(path)
    counts = {t: warehouse.row_count(t) for t in CONTRACT_TABLES}
    return path, warehouse, counts


def test_every_contract_table_has_rows(built):
    _, _, counts = built
    empty = [t for t, n in counts.items() if n == 0]
    assert not empty, f"empty contract tables: {empty}"


def test_materializing_twice_leaves_the_same_row_counts(built):
    path, _, counts = built
    again = _materialize(path)
    assert {t: again.row_count(t) for t in CONTRACT_TABLES} == counts


def test_weights_sum_to_one_for_every_strategy_and_date(built):
    # factor strategies are fully invested; staggered and signal kinds hold cash in free slots
    _, warehouse, _ = built
    factor = [n for n, s in load_strategies().items() if s.kind == "factor"]
    sums = (
        warehouse.read_table("portfolio.target_weights")
        .group_by("strategy", "rebalance_date")
        .agg(pl.col("weight").sum())
    )
    invested = sums.filter(pl.col("strategy").is_in(factor))
    assert invested.height > 0
    assert (invested["weight"] - 1).abs().max() < 1e-9
    assert sums["weight"].max() < 1 + 1e-9


def test_metrics_cover_both_shipped_strategies_and_the_benchmark(built):
    _, warehouse, _ = built
    metrics = warehouse.read_table("backtest.metrics")
    strategies = set(metrics["strategy"].unique())
    assert {"multifactor_smallcap", "magic_formula", "benchmark"} <= strategies
    sharpe = metrics.filter(pl.col("metric") == "sharpe_ratio")
    assert sharpe.height == len(strategies)
    assert sharpe["value"].is_finite().all()


def test_no_rebalance_uses_fundamentals_available_on_or_after_its_date(built):
    _, warehouse, _ = built
    values = warehouse.read_table("factors.values")
    late = values.filter(pl.col("fundamentals_available_at") >= pl.col("rebalance_date"))
    assert late.is_empty()


def test_backtest_daily_is_share_based_with_contract_columns_and_cash_never_negative(built):
    _, warehouse, _ = built
    daily = warehouse.read_table("backtest.daily")
    contract = ["strategy", "date", "portfolio_return", "benchmark_return", "equity"]
    contract += ["benchmark_equity", "drawdown", "turnover", "costs"]
    assert set(contract) <= set(daily.columns)
    assert {"portfolio_value", "cash", "fees", "slippage"} <= set(daily.columns)
    assert daily["cash"].min() >= 0
    assert daily["fees"].sum() > 0, "the default trading model charges IB commissions"
    settings = warehouse.read_table("backtest.settings")
    # a strategy left out of the backtest has a row saying why and no trading model
    left_out = settings["description"].str.starts_with("not backtested: ")
    assert settings.filter(left_out)["capital"].is_null().all()
    ran = settings.filter(~left_out)
    capital = dict(zip(ran["strategy"], ran["capital"], strict=True))
    assert capital.pop("magic_formula_lean", 1_000_000.0) == 1_000_000.0  # its trading.capital
    assert set(capital.values()) == {100_000.0}
    assert not ran["fractional"].any()
    # one dataset version for every strategy: the content hash of the curated inputs now
    assert ran["dataset_version"].unique().to_list() == [data_version(warehouse)]


def test_benchmarks_relative_metrics_and_monthly_returns_are_stored(built):
    _, warehouse, _ = built
    benchmarks = warehouse.read_table("backtest.benchmarks")
    assert set(benchmarks["benchmark"].unique()) == {"equal_weight", "cap_weight"}
    primary = benchmarks.filter(pl.col("is_primary"))["benchmark"].unique().to_list()
    assert primary == ["equal_weight"]
    relative = warehouse.read_table("backtest.relative_metrics")
    backtested = set(warehouse.read_table("backtest.daily")["strategy"].unique())
    assert {"magic_formula", "multifactor_smallcap", "blend_core"} <= backtested
    pairs = relative.select("strategy", "benchmark").unique()
    assert pairs.height == len(backtested) * 2  # every strategy x two benchmarks
    monthly = warehouse.read_table("backtest.monthly_returns")
    assert set(monthly["strategy"].unique()) == backtested


def test_tear_sheets_are_html_files_with_every_statistic_and_the_charts(built):
    _, warehouse, _ = built
    sheets = warehouse.read_table("backtest.tear_sheets")
    metrics = warehouse.read_table("backtest.metrics")
    assert set(sheets["strategy"]) == set(warehouse.read_table("backtest.daily")["strategy"])
    blends = {n for n, s in load_strategies().items() if s.kind == "blend"}
    for name, path in sheets.select("strategy", "path").iter_rows():
        page = Path(path).read_text(encoding="utf-8")
        assert page.startswith("<!DOCTYPE html>")
        for metric in metrics.filter(pl.col("strategy") == name)["metric"]:
            assert f"<code>{metric}</code>" in page, (name, metric)
        # equity, drawdown, monthly heatmap, quarterly bars, rolling Sharpe, sector exposure
        # (a blend holds sleeves, not sectors: no exposure chart)
        charts = 5 if name in blends else 6
        assert page.count('src="data:image/png;base64,') == charts, name
        assert data_version(warehouse) in page, name  # the dataset version label
        for section in ("Against each benchmark", "Monthly returns", "Quarterly summary"):
            assert f"<h2>{section}</h2>" in page
        if name not in blends:  # a blend trades sleeves, not shares: its trades are theirs
            assert "<th>commission</th>" in page and "<th>fees</th>" in page
        else:
            assert "<h2>Sleeves</h2>" in page and "<th>contribution</th>" in page
    index = Path(sheets["path"][0]).parent / "index.html"
    assert 'href="magic_formula.html"' in index.read_text(encoding="utf-8")


def test_a_ticker_from_the_data_can_be_the_primary_benchmark(built, tmp_path):
    path, warehouse, _ = built
    copy = tmp_path / "copy.duckdb"
    shutil.copy(path, copy)
    ticker = warehouse.read_table("curated.prices", columns=["ticker"])["ticker"].min()
    config = {"ops": {"backtest__benchmarks": {"config": {"primary": ticker, "tickers": []}}}}
    resources = {
        "warehouse": WarehouseResource(path=str(copy)),
        "market": MarketDataResource(source="demo", benchmark_tickers=[], demo_end=DEMO_END_ISO),
    }
    with dg.DagsterInstance.ephemeral() as instance:
        assert dg.materialize(
            [benchmarks], resources=resources, run_config=config, instance=instance
        ).success
        table = Warehouse(copy).read_table("backtest.benchmarks")
        assert set(table["benchmark"].unique()) == {"equal_weight", "cap_weight", ticker}
        assert table.filter(pl.col("is_primary"))["benchmark"].unique().to_list() == [ticker]
        config["ops"]["backtest__benchmarks"]["config"]["primary"] = "NOT_A_TICKER"
        config["ops"]["backtest__benchmarks"]["config"]["tickers"] = ["SPY", ticker]
        missing = dg.materialize(
            [benchmarks], resources=resources, run_config=config, instance=instance
        )
    # a configured benchmark that is not in the data is a warning naming it, not a failure
    assert missing.success
    (event,) = [
        m
        for m in missing.asset_materializations_for_node("backtest__benchmarks")
        if m.asset_key == dg.AssetKey(["backtest", "benchmarks"])
    ]
    # QVAL is magic_formula_lean's own benchmark ticker, absent from the demo data
    assert event.metadata["missing_benchmarks"].value == ["SPY", "NOT_A_TICKER", "QVAL"]
    assert event.metadata["primary"].value == "equal_weight"
    table = Warehouse(copy).read_table("backtest.benchmarks")
    assert set(table["benchmark"].unique()) == {"equal_weight", "cap_weight", ticker}


def test_orders_for_a_demo_holdings_file_match_between_the_asset_and_the_cli(
    built, tmp_path, monkeypatch, capsys
):
    from quant_pipeline.app.cli import main
    from quant_pipeline.defs.health import health_assets, health_checks
    from quant_pipeline.defs.orders import orders_assets

    path, warehouse, _ = built
    monkeypatch.setenv("QUANT_PIPELINE_WAREHOUSE", str(path))
    monkeypatch.setenv("QUANT_PIPELINE_PORTFOLIOS", str(tmp_path / "portfolios.yaml"))
    monkeypatch.setenv("QUANT_PIPELINE_OUTBOX", str(tmp_path / "outbox"))
    as_of = warehouse.max_date("curated.prices", "date")
    weights = warehouse.read_table(
        "portfolio.target_weights", filters={"strategy": "magic_formula"}
    )
    latest = weights.filter(pl.col("rebalance_date") == pl.col("rebalance_date").max())
    outside = (
        warehouse.read_table("curated.prices", filters={"date": as_of})
        .filter(~pl.col("ticker").is_in(latest["ticker"].to_list()))["ticker"]
        .sort()[0]
    )
    held = latest["ticker"].sort().head(2).to_list() + [outside]
    holdings = tmp_path / "demo.csv"
    holdings.write_text("ticker,shares\n" + "".join(f"{t},7\n" for t in held))
    config = {
        "portfolio": "demo",
        "strategy": "magic_formula",
        "holdings_file": str(holdings),
        "capital": 25000.0,
        "as_of": as_of.isoformat(),
    }
    resources = {
        "warehouse": WarehouseResource(path=str(path)),
        "market": MarketDataResource(
            source="demo", demo_tickers=150, demo_start="2016-01-01", demo_end=DEMO_END_ISO
        ),
    }
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [*orders_assets, *health_assets, *health_checks],
            resources=resources,
            run_config={"ops": {"orders_packets": {"config": config}}},
            instance=instance,
        )
    assert result.success
    from_asset = warehouse.read_table("orders.orders").drop(
        "packet_id", "portfolio", "strategy", "as_of", "rebalance_date"
    )
    assert set(from_asset["ticker"]) == set(latest["ticker"]) | {outside}
    assert from_asset.filter(pl.col("ticker") == outside)["target_shares"].to_list() == [0.0]
    packet = warehouse.read_table("orders.packets")
    assert packet["cash_after"][0] >= 0
    manifest = json.loads(packet["manifest"][0])
    assert manifest["dataset_version"] == data_version(warehouse)
    settings = warehouse.read_table("backtest.settings")
    assert manifest["dataset_version"] == settings["dataset_version"][0]  # same data
    assert warehouse.read_table("orders.holdings_value").height > 0

    cli_outbox = tmp_path / "cli"
    args = ["orders", "--portfolio", "demo", "--strategy", "magic_formula", "--capital", "25000"]
    args += ["--holdings", str(holdings), "--as-of", as_of.isoformat(), "--outbox", str(cli_outbox)]
    assert main(args) == 0, capsys.readouterr().err
    from_cli = pl.read_csv(cli_outbox / f"{as_of}_demo_orders.csv", try_parse_dates=True)
    assert from_cli.columns == from_asset.columns
    assert from_cli.sort("ticker").equals(from_asset.sort("ticker"))


def test_the_notebook_runs_headless_on_the_warehouse_and_shows_the_latest_results(
    built, tmp_path, monkeypatch
):
    import nbclient
    import nbformat

    from quant_pipeline.app.cli import main

    path, warehouse, _ = built
    monkeypatch.delenv("QUANT_PIPELINE_WAREHOUSE", raising=False)
    assert main(["notebook", str(tmp_path / "nb"), "--warehouse", str(path)]) == 0
    notebook = nbformat.read(tmp_path / "nb" / "quant_pipeline.ipynb", as_version=4)
    nbformat.validate(notebook)
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(
        o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in outputs
    )
    assert f"warehouse: {path}" in text
    for strategy in warehouse.read_table("backtest.comparison")["strategy"]:
        assert strategy in text  # the comparison table is shown
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2  # the equity curve and the factor IC chart
    # The notebook held no connection: a writer can open the warehouse right after.
    import duckdb

    duckdb.connect(str(path)).close()


def test_a_watched_symbol_gets_its_latest_scores_holdings_and_price(built, capsys):
    from quant_pipeline.app.cli import main
    from quant_pipeline.defs.watchlist import watchlist_status

    path, warehouse, _ = built
    weights = warehouse.read_table("portfolio.target_weights")
    mf = weights.filter(pl.col("strategy") == "magic_formula")
    last = mf.filter(pl.col("rebalance_date") == mf["rebalance_date"].max())
    held = last.filter(pl.col("weight") > 0)["ticker"].sort()[0]
    scores = warehouse.read_table("factors.scores").filter(pl.col("strategy") == "magic_formula")
    unheld = (
        scores.filter(pl.col("rebalance_date") == scores["rebalance_date"].max())
        .filter(~pl.col("ticker").is_in(last["ticker"].to_list()))["ticker"]
        .sort()[0]
    )
    assert main(["watch", "add", held.lower(), unheld, "--warehouse", str(path)]) == 0
    assert "added: " in capsys.readouterr().out
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [watchlist_status],
            resources={"warehouse": WarehouseResource(path=str(path))},
            instance=instance,
        )
    assert result.success
    status = warehouse.read_table("watchlist.status")
    row = status.filter((pl.col("symbol") == held) & (pl.col("strategy") == "magic_formula"))
    assert row["held"].to_list() == [True]
    assert row["as_of"][0] == mf["rebalance_date"].max()
    expected = last.filter(pl.col("ticker") == held)["weight"][0]
    assert row["weight"][0] == expected
    other = status.filter((pl.col("symbol") == unheld) & (pl.col("strategy") == "magic_formula"))
    assert other["held"].to_list() == [False]
    prices = warehouse.read_table("curated.prices", filters={"ticker": held})
    assert row["last_close"][0] == prices.sort("date")["close"][-1]
    assert main(["watch", "list", "--warehouse", str(path)]) == 0
    assert held in capsys.readouterr().out
    assert main(["watch", "remove", held, unheld, "--warehouse", str(path)]) == 0
    assert warehouse.read_table("watchlist.symbols").is_empty()


def test_the_universe_screen_lists_every_candidate_with_its_reason(built, tmp_path, capsys):
    from quant_pipeline.app.cli import main
    from quant_pipeline.defs.universe import universe_screen

    path, warehouse, _ = built
    rules = tmp_path / "screen.yaml"
    rules.write_text("min_price: 5\nmin_market_cap: 1.0e9\nexchanges: {include: [NYSE]}\n")
    as_of = "2020-01-02"
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [universe_screen],
            resources={
                "warehouse": WarehouseResource(path=str(path)),
                "market": MarketDataResource(source="demo", demo_end=DEMO_END_ISO),
            },
            run_config={
                "ops": {"universe_screen": {"config": {"rules": str(rules), "as_of": as_of}}}
            },
            instance=instance,
        )
    assert result.success
    screened = warehouse.read_table("universe.screened")
    assert screened["as_of"].unique().to_list() == [date(2020, 1, 2)]
    # An independent check of each rule on the stored inputs, in the order of the file
    for row in screened.iter_rows(named=True):
        if row["price"] is None or row["price"] < 5:
            expected = "min_price"
        elif row["market_cap"] is None or row["market_cap"] < 1e9:
            expected = "min_market_cap"
        elif row["exchange"] != "NYSE":
            expected = "exchanges"
        else:
            expected = None
        assert row["failed_rule"] == expected, row
        assert row["passed"] == (expected is None)
    summary = warehouse.read_table("universe.screen_summary")
    assert summary["rule"].to_list() == ["min_price", "min_market_cap", "exchanges", "passed"]
    assert summary.filter(pl.col("rule") == "passed")["remaining"][0] == screened["passed"].sum()
    # Only data before D: the values equal factor_values' row for D in factors.values when D is
    # a stored rebalance date
    values = warehouse.read_table("factors.values", filters={"rebalance_date": date(2020, 1, 2)})
    assert values.height > 0  # 2020-01-02 is a monthly rebalance date of the demo
    joined = screened.join(values.select("ticker", "market_cap"), on="ticker", suffix="_v")
    assert joined.height == screened.height
    assert (joined["market_cap"] - joined["market_cap_v"]).abs().max() < 1e-6
    assert main(["screen", "--rules", str(rules), "--as-of", as_of, "--warehouse", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"as of {as_of}: {screened['passed'].sum()} of {screened.height} pass" in out

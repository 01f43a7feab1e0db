"""The orders asset and ``quant-pipeline orders`` on a hand-made warehouse (see tiny_market)."""

import json
from datetime import date

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quant_pipeline.app.cli import main
from quant_pipeline.app.packets import read_packet
from quant_pipeline.app.recommendation import TABLE_COLUMNS
from quant_pipeline.core.backtest.costs import CommissionModel
from quant_pipeline.defs.orders import orders_packets
from quant_pipeline.storage.warehouse import Warehouse
from quant_pipeline_tests.defs.tiny_market import (
    AS_OF,
    SECTORS,
    build_warehouse,
    failure_message,
    materialize,
)

GOLDEN = ["ticker", "current_shares", "target_shares", "shares_to_trade", "side", "trade_value"]


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A tiny warehouse, an empty portfolios file location and a private outbox."""
    path = tmp_path / "quant.duckdb"
    build_warehouse(path)
    monkeypatch.setenv("QUANT_PIPELINE_WAREHOUSE", str(path))
    monkeypatch.setenv("QUANT_PIPELINE_PORTFOLIOS", str(tmp_path / "portfolios.yaml"))
    monkeypatch.setenv("QUANT_PIPELINE_OUTBOX", str(tmp_path / "outbox"))
    monkeypatch.setenv("QUANT_PIPELINE_SOURCE", "demo")
    return tmp_path


def _frame(rows):
    return pl.DataFrame(
        rows,
        schema={c: pl.String if c in ("ticker", "side") else pl.Float64 for c in GOLDEN},
        orient="row",
    )


# $50,000, no fees, whole shares (docs/orders.md worked example): floors 133/214/303/12 cost
# 49,729; the $271 left buys one more A (gap 50), B (gap 20), C (gap 1); D's $400 never fits.
CAPITAL_GOLDEN = _frame(
    [
        ("A", 0.0, 134.0, 134.0, "BUY", 20100.0),
        ("B", 0.0, 215.0, 215.0, "BUY", 15050.0),
        ("C", 0.0, 304.0, 304.0, "BUY", 10032.0),
        ("D", 0.0, 12.0, 12.0, "BUY", 4800.0),
    ]
)

# Holdings 100 A + 50 E, no cash: account 100*150 + 50*20 = 16,000. E (outside the strategy) is
# sold; A target floor(6400/150) = 42 (sell 58); B floor(4800/70) = 68, C floor(3200/33) = 96,
# D 1600/400 = 4. Proceeds 8,700 + 1,000 = 9,700; buys 4,760 + 3,168 + 1,600 = 9,528 leave 172:
# one more B (gap 40 > C's 32) -> 102, one more C (gap 32) -> 69; A is being sold, D is on target.
HOLDINGS_GOLDEN = _frame(
    [
        ("A", 100.0, 42.0, -58.0, "SELL", -8700.0),
        ("B", 0.0, 69.0, 69.0, "BUY", 4830.0),
        ("C", 0.0, 97.0, 97.0, "BUY", 3201.0),
        ("D", 0.0, 4.0, 4.0, "BUY", 1600.0),
        ("E", 50.0, 0.0, -50.0, "SELL", -1000.0),
    ]
)


def _holdings(tmp_path, text="ticker,shares,amount_invested\nA,100,12000\ne,50,\n"):
    path = tmp_path / "my_portfolio.csv"
    path.write_text(text)
    return path


def _run_asset(env, **config):
    config = {"as_of": AS_OF.isoformat(), "commission": False, **config}
    return materialize([orders_packets], env / "quant.duckdb", config)


def _run_cli(capsys, *args, as_of="2024-03-28", commission=False):
    fees = [] if commission else ["--no-commission"]
    code = main(["orders", "--as-of", as_of, *fees, *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_asset_writes_the_golden_capital_only_orders_table_and_cash_left(env):
    result = _run_asset(env, portfolio="fifty_k", strategy="magic_formula", capital=50000.0)
    assert result.success
    orders = Warehouse(env / "quant.duckdb").read_table("orders.orders")
    assert_frame_equal(orders.select(GOLDEN).sort("ticker"), CAPITAL_GOLDEN)
    assert set(orders["packet_id"]) == {"fifty_k@2024-03-28"}
    assert set(orders["rebalance_date"]) == {date(2024, 1, 2)}  # not the older 2023-10-02 one
    assert set(orders["price_date"]) == {AS_OF}
    packets = Warehouse(env / "quant.duckdb").read_table("orders.packets")
    assert packets.height == 1
    assert packets["cash_after"][0] == pytest.approx(18.0)  # 50,000 - 49,982
    assert packets["n_buys"][0] == 4


def test_asset_writes_the_golden_holdings_orders_and_the_live_holdings(env):
    held = _holdings(env)
    result = _run_asset(
        env, portfolio="my_portfolio", strategy="magic_formula", holdings_file=str(held)
    )
    assert result.success
    wh = Warehouse(env / "quant.duckdb")
    orders = wh.read_table("orders.orders").sort("ticker")
    assert_frame_equal(orders.select(GOLDEN), HOLDINGS_GOLDEN)
    # weights after trading against 16,000: A 6,300, B 4,830, C 3,201, D 1,600, E 0
    assert orders["resulting_weight"].to_list() == pytest.approx(
        [0.39375, 0.301875, 0.2000625, 0.1, 0.0]
    )
    assert orders["current_weight"].to_list() == pytest.approx([0.9375, 0, 0, 0, 0.0625])
    assert wh.read_table("orders.packets")["cash_after"][0] == pytest.approx(69.0)
    # E is outside the strategy's weights: its sector comes from curated.securities
    assert orders.filter(pl.col("ticker") == "E")["sector"].to_list() == [SECTORS["E"]]
    live = wh.read_table("orders.live_holdings").sort("ticker")
    assert live.select("portfolio", "ticker", "shares", "cost_basis").rows() == [
        ("my_portfolio", "A", 100.0, 12000.0),
        ("my_portfolio", "E", 50.0, None),
    ]


def test_asset_and_cli_give_the_same_order_table(env, capsys):
    held = _holdings(env)
    assert _run_asset(
        env, portfolio="my_portfolio", strategy="magic_formula", holdings_file=str(held)
    ).success
    from_asset = Warehouse(env / "quant.duckdb").read_table("orders.orders").select(TABLE_COLUMNS)
    cli_outbox = env / "cli_outbox"
    code, out, err = _run_cli(
        capsys,
        "--portfolio",
        "my_portfolio",
        "--strategy",
        "magic_formula",
        "--holdings",
        str(held),
        "--outbox",
        str(cli_outbox),
    )
    assert code == 0, err
    from_cli = pl.read_csv(
        cli_outbox / "2024-03-28_my_portfolio_orders.csv", try_parse_dates=True
    ).select(TABLE_COLUMNS)
    assert_frame_equal(from_cli, from_asset.sort("ticker"), check_dtypes=False)
    assert "cash left $69.00" in out
    printed = [ln.strip("│").split("┆")[0].strip() for ln in out.splitlines() if ln[:1] == "│"]
    assert printed[1:] == list("ABCDE")  # header row, then one row per ticker


def test_cli_prints_the_golden_capital_table_and_writes_the_packet(env, capsys):
    code, out, err = _run_cli(capsys, "--strategy", "magic_formula", "--capital", "50000")
    assert code == 0, err
    assert "cash left $18.00" in out
    csv = pl.read_csv(env / "outbox" / "2024-03-28_default_orders.csv")
    assert_frame_equal(csv.select(GOLDEN), CAPITAL_GOLDEN, check_dtypes=False)
    assert not Warehouse(env / "quant.duckdb").has_table("orders.orders")  # CLI never writes


def test_fractional_capital_orders_hold_target_weights_to_the_micro_share(env, capsys):
    code, _, err = _run_cli(
        capsys, "--strategy", "magic_formula", "--capital", "50000", "--fractional"
    )
    assert code == 0, err
    csv = pl.read_csv(env / "outbox" / "2024-03-28_default_orders.csv")
    # 20,000/150, 15,000/70, 10,000/33 rounded down to 1e-6 share; 5,000/400 = 12.5 exactly
    assert csv["target_shares"].to_list() == pytest.approx(
        [133.333333, 214.285714, 303.030303, 12.5], abs=1e-9
    )


def test_commission_on_charges_the_ib_fee_of_each_order(env, capsys):
    code, _, err = _run_cli(
        capsys, "--strategy", "magic_formula", "--capital", "50000", commission=True
    )
    assert code == 0, err
    csv = pl.read_csv(env / "outbox" / "2024-03-28_default_orders.csv")
    ib = CommissionModel()
    for shares, price, fee in csv.select("shares_to_trade", "price", "fees").iter_rows():
        assert fee == pytest.approx(ib.fee(shares, price))
    assert csv["fees"].sum() > 0
    packet = read_packet(env / "outbox" / "2024-03-28_default_packet.json")
    assert packet["summary"]["cash_after"] >= 0
    assert packet["manifest"]["inputs"]["commission"] == "ib_fixed"


def test_manifest_names_dates_strategy_hash_code_version_source_and_counts(env):
    held = _holdings(env)
    assert _run_asset(
        env, portfolio="my_portfolio", strategy="magic_formula", holdings_file=str(held)
    ).success
    packet = read_packet(env / "outbox" / "2024-03-28_my_portfolio_packet.json")
    m = packet["manifest"]
    from quant_pipeline.config.strategies import load_strategies

    assert m["as_of"] == "2024-03-28"
    assert m["latest_price_date"] == "2024-03-28"
    assert m["rebalance_date"] == "2024-01-02"
    assert m["strategy"] == "magic_formula"
    assert (
        m["strategy_config_hash"]
        == load_strategies(names=["magic_formula"])["magic_formula"].config_hash
    )
    assert m["code_version"]["package_version"]
    assert "git_commit" in m["code_version"]
    assert m["data_source"] == "demo"
    assert m["data_loaded"]["prices"]["demo"]["rows"] > 0
    assert m["row_counts"] == {
        "orders": 5,
        "buys": 3,
        "sells": 2,
        "holds": 0,
        "target_weights": 4,
        "holdings": 2,
        "prices": 5,
    }
    assert m["inputs"]["holdings_file"] == str(held)
    assert len(m["inputs"]["holdings_sha256"]) == 64
    assert m["bias_labels"] is None  # no backtest.labels table in this warehouse
    assert m["files"]["csv"].endswith("2024-03-28_my_portfolio_orders.csv")
    assert [r["ticker"] for r in packet["orders"]] == list("ABCDE")
    row = Warehouse(env / "quant.duckdb").read_table("orders.packets")
    assert json.loads(row["manifest"][0])["strategy_config_hash"] == m["strategy_config_hash"]


def test_bias_labels_table_rows_for_the_strategy_go_into_the_manifest(env, capsys):
    labels = pl.DataFrame(
        {
            "strategy": ["magic_formula", "multifactor_smallcap"],
            "label": ["survivorship: membership known", "other"],
        }
    )
    Warehouse(env / "quant.duckdb").replace_table("backtest.labels", labels)
    code, _, err = _run_cli(capsys, "--strategy", "magic_formula", "--capital", "1000")
    assert code == 0, err
    m = read_packet(env / "outbox" / "2024-03-28_default_packet.json")["manifest"]
    assert m["bias_labels"] == [
        {"strategy": "magic_formula", "label": "survivorship: membership known"}
    ]


def test_running_the_same_portfolio_and_date_twice_replaces_its_rows(env):
    assert _run_asset(env, portfolio="p", strategy="magic_formula", capital=50000.0).success
    assert _run_asset(env, portfolio="p", strategy="magic_formula", capital=20000.0).success
    assert _run_asset(env, portfolio="q", strategy="magic_formula", capital=50000.0).success
    wh = Warehouse(env / "quant.duckdb")
    counts = wh.read_table("orders.orders").group_by("portfolio").len().sort("portfolio")
    assert counts.rows() == [("p", 4), ("q", 4)]
    packets = wh.read_table("orders.packets").sort("portfolio")
    assert packets["cash_before"].to_list() == [20000.0, 50000.0]


def test_the_latest_rebalance_on_or_before_the_as_of_date_is_used(env, capsys):
    # as of 2024-04-02 multifactor_smallcap's 2024-04-01 rebalance (A 100%) is the latest;
    # A's 2024-03-28 price is 3 business days old, within the default 5.
    code, _, err = _run_cli(
        capsys, "--strategy", "multifactor_smallcap", "--capital", "1000", as_of="2024-04-02"
    )
    assert code == 0, err
    csv = pl.read_csv(env / "outbox" / "2024-04-02_default_orders.csv")
    assert csv.select("ticker", "target_shares").rows() == [("A", 6.0)]  # floor(1000/150)


BAD_HOLDINGS = (
    "ticker,shares,amount_invested\n"
    "A,-1,\n"  # line 2: negative
    ",5,\n"  # line 3: blank ticker
    "B,abc,\n"  # line 4: not a number
    "ZZZZ,3,\n"  # line 5: unknown ticker
    "A,2,\n"  # line 6: duplicate of line 2
)
BAD_LINES = [
    "line 2: shares '-1' is negative",
    "line 2: ticker 'A' appears more than once (lines 2, 6)",
    "line 3: ticker '' is blank",
    "line 4: shares 'abc' is not a number",
    "line 5: ticker 'ZZZZ' is not a known ticker",
    "line 6: ticker 'A' appears more than once (lines 2, 6)",
]


def _nothing_written(env):
    assert not (env / "outbox").exists() or not any((env / "outbox").iterdir())
    wh = Warehouse(env / "quant.duckdb")
    assert not wh.has_table("orders.orders")
    assert not wh.has_table("orders.packets")


def test_cli_rejects_a_malformed_holdings_file_listing_every_bad_row(env, capsys):
    held = _holdings(env, BAD_HOLDINGS)
    code, out, err = _run_cli(capsys, "--strategy", "magic_formula", "--holdings", str(held))
    assert code == 1
    assert out == ""
    assert "5 bad rows" in err
    for line in BAD_LINES:
        assert line in err
    _nothing_written(env)


def test_asset_run_fails_on_a_malformed_holdings_file_listing_every_bad_row(env):
    held = _holdings(env, BAD_HOLDINGS)
    result = _run_asset(env, portfolio="bad", holdings_file=str(held))
    assert not result.success
    message = failure_message(result)
    for line in BAD_LINES:
        assert line in message
    _nothing_written(env)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        ("ticker,shares\n", "has a header but no holding rows"),
        ("symbol,amount\nA,3\n", "has no shares column"),
        ("ticker,shares,qty\nA,1,1\n", "has 2 columns meaning shares"),
    ],
)
def test_cli_rejects_unusable_holdings_files_and_writes_nothing(env, capsys, text, expected):
    held = _holdings(env, text)
    code, _, err = _run_cli(capsys, "--strategy", "magic_formula", "--holdings", str(held))
    assert code == 1
    assert expected in err
    _nothing_written(env)


@pytest.mark.parametrize(
    ("args", "status", "expected"),
    [
        (["--strategy", "magic_formula"], 1, "give a capital amount, a holdings file or both"),
        (["--strategy", "nope", "--capital", "1"], 1, "strategy 'nope' has no target weights"),
        # options are validated by the OrdersOptions model before anything is read (usage: 2)
        (["--strategy", "magic_formula", "--capital", "-5"], 2, "capital: must not be negative"),
        (["--as-of", "2024-13-01", "--capital", "1"], 2, "as_of: as_of '2024-13-01' is not a"),
        (["--strategy", "magic_formula", "--holdings", "missing.csv"], 1, "cannot be read"),
    ],
)
def test_cli_bad_arguments_fail_with_the_reason_on_stderr(env, capsys, args, status, expected):
    code, _, err = _run_cli(capsys, *args)
    assert code == status
    assert expected in err
    _nothing_written(env)


def test_stale_prices_are_refused_with_their_age_and_the_limit(env, capsys):
    # Thu 2024-03-28 -> Mon 2024-04-08: 7 business days (Fri, Mon-Fri, Mon) > 5
    code, _, err = _run_cli(
        capsys, "--strategy", "magic_formula", "--capital", "1000", as_of="2024-04-08"
    )
    assert code == 1
    assert "refusing to emit orders" in err
    assert "from 2024-03-28, 7 business days before the as-of date 2024-04-08" in err
    assert "the limit is 5" in err
    result = _run_asset(
        env, portfolio="p", strategy="magic_formula", capital=1000.0, as_of="2024-04-08"
    )
    assert not result.success
    assert "7 business days" in failure_message(result)
    _nothing_written(env)


def test_prices_exactly_at_the_age_limit_are_accepted(env, capsys):
    # Thu 2024-03-28 -> Thu 2024-04-04 is 5 business days: allowed with the default limit 5,
    # refused with --max-price-age 4
    base = ["orders", "--as-of", "2024-04-04", "--strategy", "magic_formula", "--capital", "1000"]
    assert main(base) == 0
    capsys.readouterr()
    assert main([*base, "--max-price-age", "4", "--no-packet"]) == 1
    assert "the limit is 4" in capsys.readouterr().err


def test_one_stale_ticker_is_named_even_when_the_others_are_fresh(env, capsys):
    # multifactor_smallcap on 2024-03-28 holds F, last priced Fri 2024-03-15 (9 business days)
    code, _, err = _run_cli(capsys, "--strategy", "multifactor_smallcap", "--capital", "1000")
    assert code == 1
    assert "1 ticker(s) that must trade have prices older than 5 business days" in err
    assert "F (2024-03-15, 9 days)" in err


def test_a_portfolio_from_portfolios_yaml_supplies_the_unset_options(env, capsys):
    (env / "portfolios.yaml").write_text(
        "defaults:\n  commission: false\n"
        "portfolios:\n  fifty:\n    strategy: magic_formula\n    capital: 50000\n"
    )
    code = main(["orders", "--as-of", "2024-03-28", "--portfolio", "fifty"])
    assert code == 0, capsys.readouterr().err
    csv = pl.read_csv(env / "outbox" / "2024-03-28_fifty_orders.csv")
    assert_frame_equal(csv.select(GOLDEN), CAPITAL_GOLDEN, check_dtypes=False)


def test_the_packet_data_source_comes_from_the_warehouse_not_the_environment(
    env, monkeypatch, capsys
):
    # the warehouse was loaded from demo; the environment now says files
    monkeypatch.setenv("QUANT_PIPELINE_SOURCE", "files")
    monkeypatch.setenv("QUANT_PIPELINE_DATA_DIR", str(env))
    code, _, err = _run_cli(capsys, "--strategy", "magic_formula", "--capital", "50000")
    assert code == 0, err
    (path,) = (env / "outbox").glob("*_packet.json")
    manifest = read_packet(path)["manifest"]
    assert manifest["data_source"] == "demo"
    assert manifest["configured_source"] == "files"
    assert manifest["data_loaded"]["prices"]["demo"]["last_ingested_at"].startswith("2024-03-29")

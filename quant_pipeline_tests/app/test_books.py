"""Themes and ``--stocks`` on a hand-made warehouse (tiny_market plus factors tables)."""

from datetime import date

import polars as pl
import pytest

from quant_pipeline.app.books import resized_book, theme_book
from quant_pipeline.app.cli import main
from quant_pipeline.app.packets import read_packet
from quant_pipeline.app.recommendation import data_version
from quant_pipeline.config.themes import load_themes
from quant_pipeline.core.accounts.orders import OrdersError
from quant_pipeline.core.data.schema import SECTORS
from quant_pipeline.core.factors.values import FACTOR_NAMES
from quant_pipeline.storage.warehouse import Warehouse
from quant_pipeline_tests.defs.tiny_market import AS_OF, build_warehouse

# factors.values on 2024-03-01: quality ordered A > B > C > D on every factor (so the composite
# order does not depend on the z-score arithmetic); B shares A's sector; E is under $5.
VALUES = {
    "ticker": ["A", "B", "C", "D", "E"],
    "sector": [
        "Information Technology",
        "Information Technology",
        "Industrials",
        "Financials",
        "Energy",
    ],
    "price": [150.0, 70.0, 33.0, 400.0, 4.0],
    "roe": [0.40, 0.30, 0.20, 0.10, 0.50],
    "roa": [0.20, 0.15, 0.10, 0.05, 0.30],
    "gross_margin": [0.60, 0.50, 0.40, 0.30, 0.70],
    "debt_to_equity": [0.1, 0.2, 0.3, 0.4, 0.0],
}


def _values(day: date) -> pl.DataFrame:
    frame = pl.DataFrame(VALUES).with_columns(rebalance_date=pl.lit(day), in_universe=pl.lit(True))
    missing = [c for c in FACTOR_NAMES if c not in frame.columns]
    return frame.with_columns(
        [pl.lit(1.0e9 if c == "market_cap" else 1.0e6).alias(c) for c in missing]
    )


@pytest.fixture
def warehouse(tmp_path, monkeypatch):
    wh = build_warehouse(tmp_path / "quant.duckdb")
    # a later rebalance (after the as-of date) reverses the order: it must be ignored
    later = _values(date(2024, 4, 1)).with_columns(pl.col("roe") * -1, pl.col("roa") * -1)
    wh.replace_table("factors.values", pl.concat([_values(date(2024, 3, 1)), later]))
    scores = pl.DataFrame(
        {
            "strategy": "magic_formula",
            "rebalance_date": date(2024, 1, 2),
            "ticker": ["A", "B", "C", "D"],
            "sector": ["Information Technology", "Health Care", "Industrials", "Consumer Staples"],
            "eligible": True,
            "score": [2.0, 4.0, 6.0, 8.0],
            "rank": [1, 2, 3, 4],
        }
    )
    wh.replace_table("factors.scores", scores)
    monkeypatch.setenv("QUANT_PIPELINE_WAREHOUSE", str(tmp_path / "quant.duckdb"))
    monkeypatch.setenv("QUANT_PIPELINE_PORTFOLIOS", str(tmp_path / "portfolios.yaml"))
    monkeypatch.setenv("QUANT_PIPELINE_OUTBOX", str(tmp_path / "outbox"))
    return wh


def test_the_shipped_themes_are_the_four_styles_and_one_per_sector():
    themes = load_themes()
    sectors = {n: s.universe.include_sectors for n, s in themes.items() if n.startswith("sector_")}
    assert {n for n in themes if not n.startswith("sector_")} == {
        "value",
        "quality",
        "momentum",
        "low_volatility",
        "dividend",
    }
    assert sorted(s for (s,) in sectors.values()) == sorted(SECTORS)


def test_a_theme_scores_the_latest_values_on_or_before_the_as_of_date_under_its_sector_cap(
    warehouse: Warehouse,
):
    book = theme_book(warehouse, "quality", 3, AS_OF)
    # 3 stocks at most 30% per sector: floor(0.9) -> 1 name per sector, so B (second best, same
    # sector as A) is skipped for C and D; E fails min_price 5
    assert book.rebalance == date(2024, 3, 1)
    assert book.weights.select("ticker", "weight").rows() == [
        ("A", 1 / 3),
        ("C", 1 / 3),
        ("D", 1 / 3),
    ]
    assert book.label == "theme:quality" and book.stocks == 3
    assert theme_book(warehouse, "quality", None, AS_OF).weights.height == 4  # 20 wanted, 4 pass


def _with_dividend_yields(warehouse: Warehouse, yields: list[float | None] | None) -> None:
    values = _values(date(2024, 3, 1))
    values = (
        values.drop("dividend_yield")
        if yields is None
        else values.with_columns(pl.Series("dividend_yield", yields, dtype=pl.Float64))
    )
    warehouse.replace_table("factors.values", values)


def test_the_dividend_theme_holds_the_highest_yields_above_half_a_percent(warehouse: Warehouse):
    # A 5%, B 4% (A's sector), C 3%, D 0.2% (under the 0.5% floor), E 6% but priced under $5
    _with_dividend_yields(warehouse, [0.05, 0.04, 0.03, 0.002, 0.06])
    book = theme_book(warehouse, "dividend", 15, AS_OF)
    # 15 wanted, 30% per sector: floor(4.5) = 4 per sector, so both IT names fit; D and E fail
    assert book.weights.select("ticker", "weight").rows() == [
        ("A", 1 / 3),
        ("B", 1 / 3),
        ("C", 1 / 3),
    ]
    assert book.weights.sort("rank")["ticker"].to_list() == ["A", "B", "C"]  # by yield
    assert book.label == "theme:dividend" and book.stocks == 15


def test_a_theme_whose_factor_is_unknown_everywhere_says_so(warehouse: Warehouse):
    # the S&P folder reports no dividends: dividend_yield is null for every ticker
    _with_dividend_yields(warehouse, [None] * 5)
    with pytest.raises(OrdersError, match=r"dividend_yield, which is unknown for all 5 tickers"):
        theme_book(warehouse, "dividend", 15, AS_OF)


def test_a_warehouse_older_than_a_themes_factor_asks_for_a_new_run(warehouse: Warehouse):
    _with_dividend_yields(warehouse, None)
    with pytest.raises(OrdersError, match=r"factors.values does not have yet: run the pipeline"):
        theme_book(warehouse, "dividend", 15, AS_OF)


def test_stocks_resizes_a_strategys_latest_book(warehouse: Warehouse):
    book = resized_book(warehouse, "magic_formula", 2, AS_OF)
    assert book.weights.select("ticker", "weight").rows() == [("A", 0.5), ("B", 0.5)]
    assert book.rebalance == date(2024, 1, 2)


def test_an_unknown_theme_lists_the_shipped_ones(warehouse: Warehouse):
    with pytest.raises(OrdersError, match=r"no theme named 'qualty'.*'quality'"):
        theme_book(warehouse, "qualty", None, AS_OF)


def test_cli_orders_for_a_theme_print_and_record_the_theme_and_stocks(warehouse, capsys, tmp_path):
    args = ["orders", "--theme", "quality", "--stocks", "3", "--capital", "10000"]
    code = main([*args, "--as-of", AS_OF.isoformat(), "--no-commission"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "strategy theme:quality (rebalance 2024-03-01)" in out.out
    packet = read_packet(next((tmp_path / "outbox").rglob("*.json")))
    manifest = packet["manifest"] if "manifest" in packet else packet
    assert manifest["theme"] == "quality" and manifest["stocks"] == 3
    assert manifest["strategy"] == "theme:quality"


def test_cli_refuses_a_strategy_and_a_theme_together(warehouse, capsys):
    code = main(["orders", "--theme", "quality", "--strategy", "magic_formula", "--capital", "1"])
    assert code == 2
    assert "give a strategy or a theme, not both" in capsys.readouterr().err


def test_two_consecutive_packets_carry_the_changes_between_them(warehouse, capsys, tmp_path):
    # 2024-03-27: magic_formula resized to 2 stocks -> A 0.5, B 0.5; 2024-03-28: its own book
    # A 0.4, B 0.3, C 0.2, D 0.1 -> C and D added, A -0.10 and B -0.20 above the 1% threshold
    base = ["orders", "--strategy", "magic_formula", "--capital", "10000", "--no-commission"]
    assert main([*base, "--stocks", "2", "--as-of", "2024-03-27"]) == 0
    first = read_packet(tmp_path / "outbox" / "2024-03-27_default_packet.json")
    assert first["changes"]["previous_packet_id"] is None
    assert [r["ticker"] for r in first["target"]] == ["A", "B"]
    capsys.readouterr()
    assert main([*base, "--as-of", "2024-03-28"]) == 0
    out = capsys.readouterr().out
    second = read_packet(tmp_path / "outbox" / "2024-03-28_default_packet.json")
    changes = second["changes"]
    assert changes["previous_packet_id"] == "default@2024-03-27"
    assert second["manifest"]["previous_packet_id"] == "default@2024-03-27"
    assert [r["ticker"] for r in changes["added"]] == ["C", "D"]
    assert changes["removed"] == []
    assert [(r["ticker"], round(r["change"], 10)) for r in changes["weight_changes"]] == [
        ("B", -0.2),
        ("A", -0.1),
    ]
    assert "changes since default@2024-03-27: 2 added, 0 removed, 2 kept" in out
    assert "weight B: 50.00% -> 30.00% (-20.00%)" in out


def test_the_manifest_carries_the_dataset_version_of_the_curated_tables(warehouse, tmp_path):
    base = ["orders", "--strategy", "magic_formula", "--capital", "10000", "--no-commission"]
    assert main([*base, "--as-of", "2024-03-28"]) == 0
    first = read_packet(tmp_path / "outbox" / "2024-03-28_default_packet.json")["manifest"]
    assert (
        first["dataset_version"] == data_version(warehouse) and len(first["dataset_version"]) == 16
    )
    prices = warehouse.read_table("curated.prices")
    warehouse.replace_table(
        "curated.prices", prices.with_columns(pl.col("close") + (pl.col("ticker") == "E"))
    )
    assert main([*base, "--as-of", "2024-03-28"]) == 0
    second = read_packet(tmp_path / "outbox" / "2024-03-28_default_packet.json")["manifest"]
    assert second["dataset_version"] != first["dataset_version"]  # one price moved

"""Float shares, exchanges and dividends paid from recorded Yahoo responses, and the screen's
float rule on the profiles they give (offline: served where yfinance makes its HTTP calls)."""

from __future__ import annotations

import random
from datetime import date

import polars as pl
import pytest

from quant_pipeline.app.screen import run_screen
from quant_pipeline.core.data.curation import (
    CURATED_PRICE_COLUMNS,
    curate_fundamentals,
    curate_securities,
)
from quant_pipeline.core.data.schema import RAW_FUNDAMENTALS
from quant_pipeline.core.strategies.screen import ScreenRules
from quant_pipeline.sources.base import FetchRequest
from quant_pipeline.sources.yahoo import YahooSource
from quant_pipeline.storage.warehouse import Warehouse

# quoteSummary-defaultKeyStatistics-{AAPL,ABBV}.json: "floatShares"; MSFT's recorded profile
# (yfinance-rs) has no defaultKeyStatistics module, so its float is unknown.
AAPL_FLOAT = 14_998_187_904
ABBV_FLOAT = 1_761_524_039


def source(replay, tickers) -> YahooSource:
    return YahooSource(
        tickers, session=replay, sleep=lambda _: None, rng=random.Random(7), max_workers=2
    )


def profiles(replay) -> pl.DataFrame:
    return source(replay, ["AAPL", "ABBV", "MSFT"]).securities(FetchRequest())


def test_float_shares_come_from_default_key_statistics(replay):
    raw = {r["ticker"]: r for r in profiles(replay).iter_rows(named=True)}
    assert raw["AAPL"]["float_shares"] == AAPL_FLOAT
    assert raw["ABBV"]["float_shares"] == ABBV_FLOAT
    assert raw["MSFT"]["float_shares"] is None
    # the float is the part of the shares outstanding that trades: never more than them here
    assert raw["ABBV"]["float_shares"] <= raw["ABBV"]["shares_outstanding"]


def test_curated_profiles_name_yahoos_exchange_codes_as_the_strategies_do(replay):
    raw = profiles(replay)
    assert dict(raw.select("ticker", "exchange").iter_rows()) == {
        "AAPL": "NMS",  # raw keeps what Yahoo said
        "ABBV": "NYQ",
        "MSFT": "NMS",
    }
    curated = curate_securities(raw)
    assert dict(curated.select("ticker", "exchange").iter_rows()) == {
        "AAPL": "NASDAQ",
        "ABBV": "NYSE",
        "MSFT": "NASDAQ",
    }
    assert dict(curated.select("ticker", "float_shares").iter_rows())["AAPL"] == AAPL_FLOAT


def test_dividends_paid_come_from_the_cash_flow_statement_as_amounts(replay):
    raw = source(replay, ["AAPL"]).fundamentals(FetchRequest())
    paid = raw.filter(pl.col("item") == "dividends_paid")
    by_period = {
        (r["period_type"], r["period_end"]): r["value"] for r in paid.iter_rows(named=True)
    }
    # fundamentalsTimeSeries-AAPL-cash-flow-annual.json: annualCashDividendsPaid, as printed
    assert by_period[("A", date(2024, 9, 30))] == -15_234_000_000
    assert by_period[("A", date(2022, 9, 30))] == -14_841_000_000
    assert by_period[("Q", date(2024, 12, 31))] == -3_856_000_000
    curated = curate_fundamentals(raw).filter(
        (pl.col("period_type") == "A") & (pl.col("period_end") == date(2024, 9, 30))
    )
    assert curated["dividends_paid"].to_list() == [15_234_000_000]
    assert curated["dividends_paid_ttm"].to_list() == [15_234_000_000]  # a year is its own TTM


def _warehouse_with(tmp_path, securities: pl.DataFrame) -> Warehouse:
    """Curated tables for a screen on 2020-03-02: 30 weekdays of prices for each profile's
    ticker (close 100, so every name passes a price rule), no fundamentals."""
    days = pl.date_range(date(2020, 1, 20), date(2020, 2, 28), "1d", eager=True)
    days = days.filter(days.dt.weekday() <= 5)
    prices = pl.concat(
        pl.DataFrame({"ticker": t, "date": days}) for t in securities["ticker"]
    ).with_columns(
        open=pl.lit(100.0),
        high=pl.lit(101.0),
        low=pl.lit(99.0),
        close=pl.lit(100.0),
        adj_close=pl.lit(100.0),
        volume=pl.lit(1e6),
        daily_return=pl.lit(0.0),
    )
    fundamentals = curate_fundamentals(pl.DataFrame(schema=RAW_FUNDAMENTALS))
    warehouse = Warehouse(tmp_path / "quant.duckdb")
    warehouse.replace_table("curated.prices", prices.select(CURATED_PRICE_COLUMNS))
    warehouse.replace_table("curated.fundamentals", fundamentals)
    warehouse.replace_table("curated.securities", securities)
    return warehouse


@pytest.mark.parametrize(
    ("minimum", "expected"),
    [
        # above ABBV's float, below AAPL's: ABBV fails with its float, MSFT (unknown) fails too
        (5e9, {"AAPL": (True, None), "ABBV": (False, "1761524039.0"), "MSFT": (False, None)}),
        # above both: only the first failing value differs
        (
            2e10,
            {
                "AAPL": (False, "14998187904.0"),
                "ABBV": (False, "1761524039.0"),
                "MSFT": (False, None),
            },
        ),  # fmt: skip
    ],
)
def test_the_screens_float_rule_reads_yahoos_float(replay, tmp_path, minimum, expected):
    warehouse = _warehouse_with(tmp_path, curate_securities(profiles(replay)))
    day, result, summary = run_screen(
        warehouse, ScreenRules(min_float_shares=minimum), date(2020, 3, 2)
    )
    assert day == date(2020, 3, 2)
    got = {r["ticker"]: (r["passed"], r["failed_value"]) for r in result.iter_rows(named=True)}
    assert got == expected
    assert set(result.filter(~pl.col("passed"))["failed_rule"]) == {"min_float_shares"}
    floats = dict(result.select("ticker", "float_shares").iter_rows())
    assert floats == {"AAPL": AAPL_FLOAT, "ABBV": ABBV_FLOAT, "MSFT": None}
    failed = sum(not passed for passed, _ in expected.values())
    assert summary.row(0) == ("min_float_shares", failed, failed, 3 - failed)

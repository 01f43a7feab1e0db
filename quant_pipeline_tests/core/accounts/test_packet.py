"""Packet content: its identity, the orders CSV and the JSON document (no files involved)."""

import json
import math
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from quant_pipeline.core.accounts.packet import packet_csv, packet_id, packet_json

ORDERS = pl.DataFrame({"ticker": ["A"], "price_date": [date(2024, 4, 1)], "shares_to_trade": [3.0]})


def test_a_packet_is_identified_by_portfolio_and_as_of_date():
    assert packet_id("my_portfolio", date(2024, 4, 1)) == "my_portfolio@2024-04-01"


def test_the_orders_csv_has_a_header_and_one_row_per_order():
    assert packet_csv(ORDERS) == "ticker,price_date,shares_to_trade\nA,2024-04-01,3.0\n"


def test_the_json_document_holds_manifest_summary_and_orders_with_iso_dates_and_paths():
    manifest = {"as_of": date(2024, 4, 1), "warehouse": Path("w/q.duckdb"), "n": (1, 2)}
    doc = json.loads(packet_json(ORDERS, manifest, {"buys": 1}))
    assert doc == {
        "manifest": {"as_of": "2024-04-01", "warehouse": "w/q.duckdb", "n": [1, 2]},
        "summary": {"buys": 1},
        "orders": [{"ticker": "A", "price_date": "2024-04-01", "shares_to_trade": 3.0}],
    }


def test_a_nan_in_the_packet_is_refused_rather_than_written_as_invalid_json():
    with pytest.raises(ValueError):
        packet_json(ORDERS, {}, {"cash_left": math.nan})

"""Packet files: names, atomic writes, and a code version that never fails."""

import json
from datetime import date

import polars as pl

from quant_pipeline.app.packets import code_version, packet_paths, read_packet, write_packet


def test_packet_files_are_named_by_date_and_portfolio(tmp_path):
    files = packet_paths(tmp_path, "my_portfolio", date(2024, 4, 1))
    assert files.csv == tmp_path / "2024-04-01_my_portfolio_orders.csv"
    assert files.json == tmp_path / "2024-04-01_my_portfolio_packet.json"


def test_write_packet_writes_csv_and_json_and_leaves_no_temporary_file(tmp_path):
    orders = pl.DataFrame(
        {"ticker": ["A"], "price_date": [date(2024, 4, 1)], "shares_to_trade": [3.0]}
    )
    outbox = tmp_path / "out"
    files = write_packet(outbox, "p", date(2024, 4, 1), orders, {"as_of": date(2024, 4, 1)}, {})
    assert sorted(p.name for p in outbox.iterdir()) == [
        "2024-04-01_p_orders.csv",
        "2024-04-01_p_packet.json",
    ]
    assert files.csv.read_text() == "ticker,price_date,shares_to_trade\nA,2024-04-01,3.0\n"
    doc = json.loads(files.json.read_text())
    assert doc["manifest"]["as_of"] == "2024-04-01"
    assert doc["manifest"]["files"]["csv"] == str(files.csv)
    assert doc["orders"] == [{"ticker": "A", "price_date": "2024-04-01", "shares_to_trade": 3.0}]
    assert read_packet(files.json) == doc


def test_a_packet_that_cannot_be_serialised_writes_no_file(tmp_path):
    orders = pl.DataFrame({"ticker": ["A"], "shares_to_trade": [float("nan")]})
    outbox = tmp_path / "out"
    try:
        write_packet(outbox, "p", date(2024, 4, 1), orders, {}, {})
    except ValueError:
        pass
    else:
        raise AssertionError("a NaN order was written")
    assert not outbox.exists() or list(outbox.iterdir()) == []


def test_code_version_without_git_gives_no_commit_instead_of_failing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable anywhere
    version = code_version(tmp_path)
    assert version["git_commit"] is None
    assert version["package_version"]


def test_code_version_outside_a_repository_gives_no_commit(tmp_path):
    assert code_version(tmp_path)["git_commit"] is None

"""Universe files: CSV with membership intervals or plain ticker lists."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quant_pipeline.sources.universe import (
    UniverseError,
    align_tickers,
    current_members,
    default_universe_path,
    load_aliases,
    load_universe,
    members_on,
)


def test_a_csv_universe_keeps_intervals_and_skips_comments(tmp_path):
    path = tmp_path / "u.csv"
    path.write_text(
        "# my list\nticker,start_date,end_date\nabc,2010-01-04,2012-06-01\nXYZ,2011-03-01,\n"
    )
    expected = pl.DataFrame(
        {
            "ticker": ["ABC", "XYZ"],
            "start_date": [date(2010, 1, 4), date(2011, 3, 1)],
            "end_date": [date(2012, 6, 1), None],
        }
    )
    assert_frame_equal(load_universe(path), expected)


def test_a_plain_ticker_list_is_a_universe_without_dates(tmp_path):
    path = tmp_path / "r2000.txt"
    path.write_text("# Russell 2000 holdings\nAAON\n\nabcb\n")
    universe = load_universe(path)
    assert universe["ticker"].to_list() == ["AAON", "ABCB"]
    assert universe["start_date"].null_count() == 2 and universe["end_date"].null_count() == 2


def test_members_on_treats_the_end_date_as_exclusive():
    universe = pl.DataFrame(
        {
            "ticker": ["A", "B", "C"],
            "start_date": [date(2010, 1, 1), date(2012, 1, 1), None],
            "end_date": [date(2012, 1, 1), None, None],
        }
    )
    assert members_on(universe, date(2011, 12, 31)) == ["A", "C"]
    assert members_on(universe, date(2012, 1, 1)) == ["B", "C"]
    assert current_members(universe) == ["B", "C"]


def test_a_bad_date_names_the_file_column_and_row(tmp_path):
    path = tmp_path / "u.csv"
    path.write_text("ticker,start_date\nA,2010-01-01\nB,01/02/2010\n")
    with pytest.raises(UniverseError, match=r"u.csv: column 'start_date'.*rows \[1\].*01/02/2010"):
        load_universe(path)


def test_a_csv_without_a_ticker_column_is_rejected(tmp_path):
    path = tmp_path / "u.csv"
    path.write_text("symbol,weight\nA,0.5\n")
    with pytest.raises(UniverseError, match="needs a 'ticker' column"):
        load_universe(path)


def test_the_shipped_sp500_universe_has_about_500_members_mid_2015():
    universe = load_universe(default_universe_path())
    assert 490 <= len(members_on(universe, date(2015, 6, 30))) <= 510
    assert 490 <= len(current_members(universe)) <= 510
    assert default_universe_path().read_text().startswith("# S&P 500")
    assert "MIT License" in default_universe_path().read_text()[:2000]


def test_aliases_map_todays_ticker_to_the_one_prices_use():
    aliases = load_aliases()
    tickers = pl.Series("ticker", ["BKNG", "AAPL", "META"])
    # prices know PCLN (old) and META (new): BKNG -> PCLN, META unchanged
    out = align_tickers(tickers, {"PCLN", "AAPL", "META"}, aliases)
    assert out.to_list() == ["PCLN", "AAPL", "META"]

"""Reading a holdings file from disk: the path names the file in every error."""

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quant_pipeline.app.holdings_file import read_holdings
from quant_pipeline.core.accounts.holdings import HoldingsError


def test_reads_tickers_shares_and_cost_basis_from_a_path(tmp_path):
    path = tmp_path / "my_portfolio.csv"
    path.write_text("ticker,shares,cost_basis\nAAPL,10,1500\nMSFT,2.5,\nBRK-B,1.25,400.00\n")
    got = read_holdings(path, known_tickers=["AAPL", "MSFT", "BRK-B"])
    expected = pl.DataFrame(
        {
            "ticker": ["AAPL", "MSFT", "BRK-B"],
            "shares": [10.0, 2.5, 1.25],
            "cost_basis": [1500.0, None, 400.0],
        }
    )
    assert_frame_equal(got, expected)


def test_a_bad_row_is_reported_against_the_path(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("ticker,shares\nAAPL,-1\n")
    with pytest.raises(HoldingsError) as exc:
        read_holdings(path)
    assert str(exc.value).startswith(f"holdings file {str(path)!r} is not usable: 1 bad row")
    assert exc.value.problems[0].line == 2


def test_a_missing_file_is_a_holdings_error_naming_the_path(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(HoldingsError, match="nope.csv") as exc:
        read_holdings(missing)
    assert "cannot be read" in str(exc.value)

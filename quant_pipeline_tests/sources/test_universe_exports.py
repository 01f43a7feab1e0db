# ruff: noqa: E501 - the export lines are quoted as iShares writes them
"""Universe lists in the index-holdings export layout (iShares IWM / Russell 2000)."""

from datetime import date

import polars as pl

from quant_pipeline.sources.base import FetchRequest
from quant_pipeline.sources.files import FilesSource
from quant_pipeline.sources.universe import load_universe

# The shape of iShares' "Detailed Holdings" CSV: fund information, a blank line, the header,
# equity rows, cash and futures rows, then a disclaimer.
IWM_EXPORT = """\ufeffiShares Russell 2000 ETF
Fund Holdings as of,"Nov 28, 2026"
Inception Date,"May 22, 2000"
Shares Outstanding,"300,000,000.00"
\xa0
Ticker,Name,Sector,Asset Class,Market Value,Weight (%),Notional Value,Quantity,Price
"IONQ","IONQ INC","Information Technology","Equity","412,345,678.00","0.52","412,345,678.00","9,876,543.00","41.75"
"sfm","SPROUTS FARMERS MARKET INC","Consumer Staples","Equity","398,000,000.00","0.50","398,000,000.00","2,000,000.00","199.00"
"BRK.B","NOT REALLY IN IWM","Financials","Equity","1.00","0.00","1.00","1.00","1.00"
"USD","USD CASH","Cash and/or Derivatives","Cash","12,345,678.00","0.02","12,345,678.00","12,345,678.00","100.00"
"RTYZ6","RUSS 2000 EMINI DEC 26","Cash and/or Derivatives","Futures","0.00","0.00","85,000,000.00","350.00","2,430.00"
"-","OTHER","-","Equity","0.00","0.00","0.00","0.00","0.00"
\xa0
"The content contained herein is owned or licensed by BlackRock and/or its third-party information providers and is protected by applicable copyrights, trademarks, service marks, and/or other intellectual property rights."
"""

SIMPLE_EXPORT = """Ticker,Name,Sector,Weight (%),Market Value,Price
AAPL,Apple Inc.,Information Technology,7.1,"3,000,000",230.10
MSFT,Microsoft Corp,Information Technology,6.5,"2,700,000",410.00
"""


def test_an_iwm_holdings_export_is_read_as_its_equity_tickers(tmp_path):
    path = tmp_path / "IWM_holdings.csv"
    path.write_text(IWM_EXPORT, encoding="utf-8")
    universe = load_universe(path)
    assert universe["ticker"].to_list() == ["BRK.B", "IONQ", "SFM"]
    assert universe["start_date"].null_count() == 3 and universe["end_date"].null_count() == 3


def test_the_plain_export_layout_without_fund_lines_is_read_too(tmp_path):
    path = tmp_path / "r2000.csv"
    path.write_text(SIMPLE_EXPORT)
    assert load_universe(path)["ticker"].to_list() == ["AAPL", "MSFT"]


def test_the_files_source_takes_its_membership_from_a_universe_export(tmp_path):
    (tmp_path / "prices.csv").write_text(
        "ticker,date,close\nAAPL,2020-01-02,1\nMSFT,2020-01-02,2\nSPY,2020-01-02,3\n"
    )
    universe = tmp_path / "r2000.csv"
    universe.write_text(SIMPLE_EXPORT)
    source = FilesSource(tmp_path, universe=universe)
    membership = source.membership(FetchRequest())
    assert membership.select("universe", "ticker", "start_date", "end_date").rows() == [
        ("r2000", "AAPL", None, None),
        ("r2000", "MSFT", None, None),
    ]
    # prices keep every ticker (SPY stays available as a benchmark, outside the universe)
    assert sorted(source.prices(FetchRequest())["ticker"]) == ["AAPL", "MSFT", "SPY"]
    assert source.prices(FetchRequest())["date"].unique().to_list() == [date(2020, 1, 2)]
    assert membership.schema["start_date"] == pl.Date

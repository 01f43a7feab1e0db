"""Company names to tickers for holdings files (core/accounts/security_names.py)."""

import polars as pl
import pytest

from quant_pipeline.core.accounts.holdings import HoldingsError, parse_holdings
from quant_pipeline.core.accounts.security_names import normalise_name, resolve_names

# names as curated.securities holds them for the S&P 500 folder (securities.csv, "Security")
SECURITIES = pl.DataFrame(
    {
        "ticker": ["AAPL", "GOOGL", "GOOG", "T", "KO", "NWSA", "NWS", "MMM", "ACN", "BRK.B"],
        "name": [
            "Apple Inc.",
            "Alphabet Inc Class A",
            "Alphabet Inc Class C",
            "AT&T Inc",
            "Coca Cola Company",
            "News Corp. Class A",
            "News Corp. Class B",
            "3M Company",
            "Accenture plc",
            "Berkshire Hathaway",
        ],
    }
)


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("Apple Inc.", "apple"),
        ("APPLE INC", "apple"),
        ("The Coca-Cola Company", "coca cola"),
        ("AT&T, Inc.", "at and t"),
        ("Accenture PLC", "accenture"),
        ("Energy Transfer L.P.", "energy transfer"),
        ("Alphabet Inc Class A", "alphabet class a"),
    ],
)
def test_names_compare_without_case_punctuation_and_legal_forms(given, normal):
    assert normalise_name(given) == normal


def test_each_spelling_of_a_company_resolves_to_its_one_ticker():
    names = ["apple", "Coca-Cola Co.", "AT&T", "3M Co", "alphabet class c", "ACCENTURE"]
    assert [m.ticker for m in resolve_names(names, SECURITIES)] == [
        "AAPL",
        "KO",
        "T",
        "MMM",
        "GOOG",
        "ACN",
    ]


def test_an_ambiguous_name_lists_every_candidate():
    (match,) = resolve_names(["Alphabet Inc."], SECURITIES)
    assert match.ticker is None
    assert match.problem == (
        "is ambiguous: 2 companies match: GOOG (Alphabet Inc Class C), GOOGL (Alphabet Inc Class A)"
    )


def test_an_unknown_name_lists_candidates_sharing_a_word():
    (match,) = resolve_names(["Hathaway Berkshire Holdings"], SECURITIES)
    assert match.problem == "is not a known company name; candidates: BRK.B (Berkshire Hathaway)"
    (nothing,) = resolve_names(["Zzyzx Widgets"], SECURITIES)
    assert nothing.problem.startswith("is not a known company name (no security")


def test_a_spreadsheet_holdings_file_by_stock_name_parses_to_tickers():
    text = (
        "Stock Name,Number of Shares,Dollar amount invested\n"
        'Apple Inc.,10,"$1,500.00"\n'
        "coca-cola,25,1000\n"
    )
    holdings = parse_holdings(text, securities=SECURITIES, known_tickers=SECURITIES["ticker"])
    assert holdings.rows() == [("AAPL", 10.0, 1500.0), ("KO", 25.0, 1000.0)]


def test_a_name_column_called_name_works_too_and_bad_names_are_every_listed():
    text = "Name,Shares\nAlphabet,1\nNope Corp,2\nApple,3\n"
    with pytest.raises(HoldingsError) as caught:
        parse_holdings(text, securities=SECURITIES)
    problems = [str(p) for p in caught.value.problems]
    assert problems == [
        "line 2: name 'Alphabet' is ambiguous: 2 companies match: GOOG (Alphabet Inc Class C), "
        "GOOGL (Alphabet Inc Class A)",
        "line 3: name 'Nope Corp' is not a known company name (no security in "
        "curated.securities shares a word with it)",
    ]


def test_names_without_loaded_securities_are_refused_with_the_reason():
    text = "Stock Name,Number of Shares\nApple,1\n"
    with pytest.raises(HoldingsError, match="no securities"):
        parse_holdings(text, securities=SECURITIES.clear())
    with pytest.raises(HoldingsError, match="has no ticker column"):
        parse_holdings(text)

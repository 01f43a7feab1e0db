import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quant_pipeline.core.accounts.holdings import HoldingsError, HoldingsProblem, parse_holdings

KNOWN = ["AAPL", "MSFT", "BRK-B", "NVDA"]


def problems(exc: pytest.ExceptionInfo[HoldingsError]) -> list[tuple[int, str, str]]:
    return [(p.line, p.column, p.value) for p in exc.value.problems]


def test_reads_tickers_shares_and_cost_basis_from_the_text():
    text = "ticker,shares,cost_basis\nAAPL,10,1500\nMSFT,2.5,\nBRK-B,1.25,400.00\n"
    got = parse_holdings(text, known_tickers=KNOWN)
    expected = pl.DataFrame(
        {
            "ticker": ["AAPL", "MSFT", "BRK-B"],
            "shares": [10.0, 2.5, 1.25],
            "cost_basis": [1500.0, None, 400.0],
        }
    )
    assert_frame_equal(got, expected)


def test_errors_name_the_file_as_the_caller_names_it_default_holdings():
    with pytest.raises(HoldingsError, match="^holdings file '<holdings>' is not usable"):
        parse_holdings("ticker,shares\n,1\n")


def test_accepts_aliases_case_spacing_bom_and_lowercase_tickers():
    raw = (
        "\ufeff Symbol , QUANTITY ,Amount Invested,notes\n"
        ' aapl , 3 ,"$1,234.50",long term\n\n'
        "nvda,0.001,,\n"
    ).encode()
    got = parse_holdings(raw)
    expected = pl.DataFrame(
        {"ticker": ["AAPL", "NVDA"], "shares": [3.0, 0.001], "cost_basis": [1234.5, None]}
    )
    assert_frame_equal(got, expected)


def test_cost_basis_column_is_optional_and_null_when_absent():
    got = parse_holdings("ticker,qty\nMSFT,1\n")
    assert got.schema == pl.Schema(
        {"ticker": pl.String, "shares": pl.Float64, "cost_basis": pl.Float64}
    )
    assert got["cost_basis"].to_list() == [None]


def test_every_bad_row_is_listed_with_its_line_value_and_rule():
    text = (
        "ticker,shares,amount_invested\n"  # line 1
        "AAPL,-1,100\n"  # 2: negative shares; AAPL duplicated on line 6
        ",3,\n"  # 3: blank ticker
        "MSFT,abc,\n"  # 4: non-numeric shares
        "\n"  # 5: blank line, skipped but counted
        "AAPL,2,-5\n"  # 6: duplicate, negative cost basis
        "ZZZZ,1,\n"  # 7: unknown ticker
        "NVDA,,\n"  # 8: blank shares
        "BRK-B,inf,x\n"  # 9: non-finite shares, non-numeric cost basis
    )
    with pytest.raises(HoldingsError) as exc:
        parse_holdings(text, known_tickers=KNOWN, name="inbox/bad.csv")
    assert problems(exc) == [
        (2, "shares", "-1"),
        (2, "ticker", "AAPL"),
        (3, "ticker", ""),
        (4, "shares", "abc"),
        (6, "cost_basis", "-5"),
        (6, "ticker", "AAPL"),
        (7, "ticker", "ZZZZ"),
        (8, "shares", ""),
        (9, "shares", "inf"),
        (9, "cost_basis", "x"),
    ]
    message = str(exc.value)
    assert message.startswith("holdings file 'inbox/bad.csv' is not usable: 7 bad rows")
    assert "line 2: shares '-1' is negative" in message
    assert "line 3: ticker '' is blank" in message
    assert "line 4: shares 'abc' is not a number" in message
    assert "line 6: ticker 'AAPL' appears more than once (lines 2, 6)" in message
    assert "line 7: ticker 'ZZZZ' is not a known ticker" in message
    assert "line 8: shares '' is blank" in message
    assert "line 9: shares 'inf' is not finite" in message


def test_duplicates_are_found_after_upper_casing_and_trimming():
    with pytest.raises(HoldingsError) as exc:
        parse_holdings("ticker,shares\nAAPL,1\nMSFT,1\n aapl ,2\naapl,3\n")
    assert problems(exc) == [(2, "ticker", "AAPL"), (4, "ticker", "AAPL"), (5, "ticker", "AAPL")]
    assert "appears more than once (lines 2, 4, 5)" in str(exc.value)


def test_unknown_tickers_are_allowed_when_no_ticker_list_is_given():
    assert parse_holdings("ticker,shares\nZZZZ,1\n")["ticker"].to_list() == ["ZZZZ"]


def test_line_numbers_follow_the_file_across_quoted_multiline_fields():
    text = 'ticker,shares,note\nAAPL,1,"two\nlines"\nMSFT,-2,\n'
    with pytest.raises(HoldingsError) as exc:
        parse_holdings(text, name="q.csv")
    assert problems(exc) == [(4, "shares", "-2")]


def test_a_row_longer_than_the_header_is_reported():
    with pytest.raises(HoldingsError) as exc:
        parse_holdings("ticker,shares\nAAPL,1,2\nMSFT,1,\n")
    assert exc.value.problems == [
        HoldingsProblem(2, "", "AAPL,1,2", "has 3 fields but the header has 2")
    ]


def test_thousands_separators_are_read_but_a_decimal_comma_is_not():
    assert parse_holdings('ticker,shares\nAAPL,"1,000.5"\n')["shares"].to_list() == [1000.5]
    with pytest.raises(HoldingsError, match="line 2: shares '1,5' is not a number"):
        parse_holdings('ticker,shares\nAAPL,"1,5"\n')


@pytest.mark.parametrize(
    ("content", "rule"),
    [
        (b"", "the file is empty"),
        (b"\n\n  \n", "the file is empty"),
        (b"ticker,shares\n", "the file has a header but no holding rows"),
        (b"ticker,amount\nAAPL,1\n", "the file has no shares column"),
        (b"name,qty\nAAPL,1\n", "the file has no ticker column"),
        (b"symbol,ticker,shares\nA,A,1\n", "the file has 2 columns meaning ticker"),
        (b"\xff\xfe\x00t", "the file is not UTF-8 text"),
    ],
)
def test_file_level_problems_name_the_file_and_the_rule(content, rule):
    with pytest.raises(HoldingsError) as exc:
        parse_holdings(content, name="inbox/x.csv")
    assert str(exc.value).startswith("holdings file 'inbox/x.csv' is not usable\n")
    assert rule in str(exc.value)


def test_both_missing_columns_are_listed_at_once():
    with pytest.raises(HoldingsError) as exc:
        parse_holdings("a,b\n1,2\n")
    rules = [p.rule for p in exc.value.problems]
    assert len(rules) == 2
    assert rules[0].startswith("has no ticker column")
    assert rules[1].startswith("has no shares column")

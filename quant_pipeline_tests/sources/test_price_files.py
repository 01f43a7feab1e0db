"""Per-ticker price folders and the quarantine of messy rows (sources/price_files.py)."""

from datetime import date
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quant_pipeline.sources import price_files
from quant_pipeline.sources.base import FetchRequest, SourceError
from quant_pipeline.sources.files import FilesSource
from quant_pipeline.sources.price_files import ticker_from_file_name

HEADER = "Date,Open,High,Low,Close,Volume,OpenInt\n"


def write(folder, name, body, header=HEADER):
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(header + body)


@pytest.mark.parametrize(
    ("name", "ticker"),
    [
        ("aapl.us.txt", "AAPL"),
        ("brk-b.us.txt", "BRK-B"),
        ("agm_a.us.txt", "AGM-A"),
        ("MSFT.csv", "MSFT"),
    ],
)
def test_the_ticker_is_the_file_name_before_the_first_dot_upper_cased(name, ticker):
    assert ticker_from_file_name(name) == ticker


def test_a_folder_of_per_ticker_files_reads_as_one_price_table(tmp_path):
    folder = tmp_path / "prices"
    write(folder, "aapl.us.txt", "2010-01-04,1,2,0.5,1.5,100,0\n2010-01-05,1,2,0.5,1.6,200,0\n")
    write(folder, "brk-b.us.txt", "2010-01-04,10,12,9,11,5,0\n")
    prices = FilesSource(tmp_path).prices(FetchRequest())
    assert prices.select("ticker", "date", "open", "high", "low", "close", "volume").rows() == [
        ("AAPL", date(2010, 1, 4), 1.0, 2.0, 0.5, 1.5, 100.0),
        ("AAPL", date(2010, 1, 5), 1.0, 2.0, 0.5, 1.6, 200.0),
        ("BRK-B", date(2010, 1, 4), 10.0, 12.0, 9.0, 11.0, 5.0),
    ]
    assert FilesSource(tmp_path).rejected_rows("prices").is_empty()


def test_the_mapping_names_another_folder_and_maps_its_columns(tmp_path):
    folder = tmp_path / "Stocks"
    write(folder, "x.us.txt", "2010-01-04,7\n", header="Day,Last\n")
    mapping = {"prices": {"folder": "Stocks", "columns": {"date": "Day", "close": "Last"}}}
    prices = FilesSource(tmp_path, mapping=mapping).prices(FetchRequest())
    assert prices.select("ticker", "date", "close").rows() == [("X", date(2010, 1, 4), 7.0)]


def test_empty_binary_header_only_and_wrong_column_files_are_listed_not_fatal(tmp_path):
    folder = tmp_path / "prices"
    write(folder, "good.us.txt", "2010-01-04,1,2,0.5,1.5,100,0\n")
    (folder / "empty.us.txt").write_text("")
    (folder / "blob.us.txt").write_bytes(b"\x00\x01\x02")
    write(folder, "header.us.txt", "")
    write(folder, "noclose.us.txt", "2010-01-04,1\n", header="Date,Open\n")
    source = FilesSource(tmp_path)
    assert source.prices(FetchRequest())["ticker"].to_list() == ["GOOD"]
    files = source.rejected_rows("prices").select(
        pl.col("file").str.replace(r"^.*/", ""), "line", "rule", "reason"
    )
    assert sorted(files.rows()) == [
        ("blob.us.txt", None, "not a CSV", "not a CSV (binary content)"),
        ("empty.us.txt", None, "empty file", "empty file"),
        ("header.us.txt", None, "empty file", "header only"),
        (
            "noclose.us.txt",
            None,
            "missing columns",
            "missing columns: ['close']; header is ['Date', 'Open']",
        ),
    ]


def test_a_folder_without_one_usable_file_names_the_files_and_why(tmp_path):
    folder = tmp_path / "prices"
    folder.mkdir()
    (folder / "a.txt").write_text("")
    with pytest.raises(SourceError, match=r"none of the 1 files .* a.txt: empty file"):
        FilesSource(tmp_path).prices(FetchRequest())


def test_stray_headers_bad_dates_and_bad_numbers_are_set_aside_with_their_line(tmp_path):
    folder = tmp_path / "prices"
    body = (
        "2010-01-04,1,2,0.5,1.5,100,0\n"  # line 2: good
        + HEADER  # line 3: a second header, as when files were concatenated
        + "2010-13-45,1,2,0.5,1.5,100,0\n"  # line 4
        + "2010-01-06,1,2,0.5,abc,100,0\n"  # line 5
        + "2010-01-07,1,2,0.5,1.7,,0\n"  # line 6: an empty volume is a null, not an error
    )
    write(folder, "a.us.txt", body)
    source = FilesSource(tmp_path)
    assert source.prices(FetchRequest())["date"].to_list() == [date(2010, 1, 4), date(2010, 1, 7)]
    rejected = source.rejected_rows("prices").sort("line")
    assert rejected.select("line", "ticker", "rule", "reason").rows() == [
        (3, "A", "repeated header", "repeated header row"),
        (4, "A", "bad date", "date '2010-13-45' is not a date"),
        (5, "A", "bad number", "close 'abc' is not a number"),
    ]
    assert rejected["content"][2] == "2010-01-06,1,2,0.5,abc,100"


def test_conflicting_duplicates_are_set_aside_and_identical_ones_kept_once(tmp_path):
    folder = tmp_path / "prices"
    # agm-a and agm_a are one ticker: 01-04 agrees, 01-05 does not
    write(folder, "agm-a.us.txt", "2010-01-04,1,2,0.5,1.5,100,0\n2010-01-05,1,2,0.5,1.6,100,0\n")
    write(folder, "agm_a.us.txt", "2010-01-04,1,2,0.5,1.5,100,0\n2010-01-05,1,2,0.5,1.7,100,0\n")
    source = FilesSource(tmp_path)
    prices = source.prices(FetchRequest())
    assert prices.select("ticker", "date").rows() == [("AGM-A", date(2010, 1, 4))]
    rejected = source.rejected_rows("prices").sort("file")
    assert rejected.select(pl.col("file").str.replace(r"^.*/", ""), "line", "rule").rows() == [
        ("agm-a.us.txt", 3, "conflicting duplicate"),
        ("agm_a.us.txt", 3, "conflicting duplicate"),
    ]
    assert rejected["reason"][0] == (
        "conflicting duplicate: 2 rows for AGM-A on 2010-01-05 with different values "
        "(files agm-a.us.txt, agm_a.us.txt)"
    )


def test_bad_rows_from_a_second_parse_of_only_the_files_that_lost_rows_match_a_full_one(tmp_path):
    folder = tmp_path / "prices"
    good = "2010-01-04,1,2,0.5,1.5,100,0\n2010-01-05,1,2,0.5,1.6,100,0\n"
    bodies = {
        "a.us.txt": good,
        "b.us.txt": "x,1,2,0.5,1.5,100,0\n" + good,  # bad first row
        "c.us.txt": good,
        "d.us.txt": good + "2010-01-06,1,2,0.5,n/a,100,0\n",  # bad last row
        "e.us.txt": "2011-13-45,1,2,0.5,1,1,0\n" + HEADER,  # every row bad
        "f.us.txt": good + "2010-01-06, 1.5 ,2,0.5,1.7,,0\n",
        "g.us.txt": good,
    }
    for name, body in bodies.items():
        write(folder, name, body)
    files = sorted(folder.iterdir())
    columns = {c.lower(): pl.col(c) for c in ["Date", "Open", "High", "Low", "Close", "Volume"]}
    full = price_files.parse_scan(price_files.scan_files(files), columns, None, base=10)
    again = price_files.parse_scan(
        price_files.scan_files(files),
        columns,
        None,
        base=10,
        rescan=lambda names: price_files.scan_files([Path(n) for n in names]),
    )
    for expected, got in zip(full, again, strict=True):
        assert_frame_equal(got, expected)
    # rows from 10: a 10-11, b 12-14, c 15-16, d 17-19, e 20-21, f 22-24 (" 1.5 " is a number)
    assert full[1]["__row"].to_list() == [12, 19, 20, 21]

"""File errors name the file and, where there is one, the line (issue 13, item 12)."""

from __future__ import annotations

import gzip

import pytest

from quant_pipeline.sources.base import FetchRequest, SourceError
from quant_pipeline.sources.files import FilesSource

HEADER = "ticker,date,close\n"


def test_a_truncated_gzip_names_the_file_and_the_last_whole_line(tmp_path):
    body = HEADER + "".join(f"A,2020-01-{d:02d},{d}.5\n" for d in range(1, 29)) * 2000
    whole = gzip.compress(body.encode())
    (tmp_path / "prices.csv.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(SourceError) as exc:
        FilesSource(tmp_path).prices(FetchRequest())
    message = str(exc.value)
    assert message.startswith(f"{tmp_path / 'prices.csv.gz'}: the gzip file is truncated")
    line = int(message.split("breaks after line ")[1].split()[0])
    assert 0 < line < body.count("\n")


def test_a_non_utf8_securities_file_names_the_file_and_line(tmp_path):
    (tmp_path / "prices.csv").write_text(HEADER + "A,2020-01-02,1\n")
    (tmp_path / "securities.csv").write_bytes(
        b"ticker,name,sector\nA,Agilent,Health\nB,Caf\xe9,Food\n"
    )
    with pytest.raises(SourceError) as exc:
        FilesSource(tmp_path).securities(FetchRequest())
    assert str(exc.value) == (
        f"{tmp_path / 'securities.csv'}: line 3 is not UTF-8 (byte 0xe9 at offset 41); "
        "save the file as UTF-8"
    )


def test_a_non_utf8_byte_deep_in_a_large_prices_file_names_its_line(tmp_path):
    rows = [f"A,2020-01-02,{i}\n".encode() for i in range(50_000)]
    rows[40_000] = b"A,2020-01-02,\xff\n"
    (tmp_path / "prices.csv").write_bytes(HEADER.encode() + b"".join(rows))
    with pytest.raises(SourceError, match=r"prices.csv: line 40002 is not UTF-8 \(byte 0xff"):
        FilesSource(tmp_path).prices(FetchRequest())

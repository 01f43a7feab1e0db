"""The holdings file reader refuses what it must not read (issue 13, item 9): FIFOs and devices
before opening them, and files over the size limit before reading them."""

from __future__ import annotations

import os

import pytest

from quant_pipeline.app.holdings_file import read_holdings
from quant_pipeline.core.accounts.holdings import MAX_FILE_BYTES, HoldingsError


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "holdings.csv"
    os.mkfifo(fifo)
    with pytest.raises(HoldingsError, match="is a FIFO, not a file"):
        read_holdings(fifo)


def test_a_device_such_as_dev_zero_is_refused():
    with pytest.raises(HoldingsError, match="is a device or directory, not a file"):
        read_holdings("/dev/zero")


def test_a_file_over_the_size_limit_is_refused_before_reading(tmp_path):
    big = tmp_path / "big.csv"
    big.write_bytes(b"ticker,shares\n" + b"AAPL,1\n" * (MAX_FILE_BYTES // 7 + 1))
    with pytest.raises(HoldingsError, match="is larger than 1,000,000 bytes"):
        read_holdings(big)

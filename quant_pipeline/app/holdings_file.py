"""Read a holdings file from disk and parse it with the pure core parser.

The file layout and every rule are in :mod:`quant_pipeline.core.accounts.holdings`; this module
only does the reading, so the core never touches the file system.
"""

from __future__ import annotations

import stat
from collections.abc import Iterable
from pathlib import Path

import polars as pl

from quant_pipeline.core.accounts.holdings import (
    MAX_FILE_BYTES,
    HoldingsError,
    HoldingsProblem,
    parse_holdings,
    too_large,
)


def read_holdings(
    path: str | Path,
    known_tickers: Iterable[str] | None = None,
    name: str | None = None,
    securities: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The holdings in the CSV at ``path`` (see :func:`parse_holdings` for the frame and rules).

    ``name`` is how errors refer to the file (default: the path); ``securities`` (ticker, name)
    resolves a company-name column. A file that cannot be read is
    a :class:`HoldingsError` naming the path and the operating system's reason.
    """
    label = name or str(path)
    raw = read_bounded(Path(path), label)
    return parse_holdings(raw, known_tickers=known_tickers, name=label, securities=securities)


def read_bounded(path: Path, label: str) -> bytes:
    """The bytes of a regular file of at most ``MAX_FILE_BYTES``. A FIFO, a device (such as
    ``/dev/zero``) or a directory is refused before it is opened: reading one could block
    forever or never end. At most ``MAX_FILE_BYTES + 1`` bytes are read, even from a file that
    grows while it is read."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device or directory"
            raise HoldingsError(label, [HoldingsProblem(0, "", "", f"is {kind}, not a file")])
        if info.st_size > MAX_FILE_BYTES:
            raise HoldingsError(label, [too_large()])
        with path.open("rb") as handle:
            return handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise HoldingsError(
            label, [HoldingsProblem(0, "", "", f"cannot be read: {exc.strerror or exc}")]
        ) from exc

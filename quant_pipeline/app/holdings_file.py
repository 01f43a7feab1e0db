"""Read a holdings file from disk and parse it with the pure core parser.

The file layout and every rule are in :mod:`quant_pipeline.core.accounts.holdings`; this module
only does the reading, so the core never touches the file system.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import polars as pl

from quant_pipeline.core.accounts.holdings import HoldingsError, HoldingsProblem, parse_holdings


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
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise HoldingsError(
            label, [HoldingsProblem(0, "", "", f"cannot be read: {exc.strerror or exc}")]
        ) from exc
    return parse_holdings(raw, known_tickers=known_tickers, name=label, securities=securities)

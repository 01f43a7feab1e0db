"""The interface every data source implements (``demo``, ``yahoo``, ``files``).

A source returns polars frames in the raw schemas of :mod:`quant_pipeline.core.data.schema`. It
never touches the warehouse: the ingestion assets write what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Protocol, runtime_checkable

import polars as pl


class SourceError(RuntimeError):
    """A source could not deliver data (network unreachable, bad file, nothing returned)."""


@dataclass(frozen=True)
class FetchRequest:
    """What to fetch: tickers (None = the source's whole universe) and an optional date window.

    ``start`` lets an incremental refresh ask only for recent prices; sources that cannot filter
    may return more, and the warehouse de-duplicates on the natural key.
    """

    tickers: tuple[str, ...] | None = None
    start: date | None = None
    end: date | None = None
    per_ticker_start: dict[str, date] = field(default_factory=dict)


@runtime_checkable
class Source(Protocol):
    """A market data source. Every method returns a frame in the matching raw schema."""

    name: str

    def universe(self) -> list[str]:
        """Tickers this source covers (for yahoo: the configured universe file)."""
        ...

    def prices(self, request: FetchRequest) -> pl.DataFrame:
        """Daily OHLCV, as-traded close and adjusted close: schema RAW_PRICES."""
        ...

    def corporate_actions(self, request: FetchRequest) -> pl.DataFrame:
        """Splits and dividends: schema RAW_CORPORATE_ACTIONS (may be empty)."""
        ...

    def fundamentals(self, request: FetchRequest) -> pl.DataFrame:
        """Statement items in long format: schema RAW_FUNDAMENTALS."""
        ...

    def securities(self, request: FetchRequest) -> pl.DataFrame:
        """Company profiles: schema RAW_SECURITIES."""
        ...

    def membership(self, request: FetchRequest) -> pl.DataFrame:
        """Universe membership intervals: schema RAW_MEMBERSHIP (may be empty)."""
        ...

"""Universes: lists of tickers, optionally with membership intervals, read from files.

A universe file is either

* a CSV with a ``ticker`` column and optional ``start_date`` / ``end_date`` columns (ISO dates;
  an empty ``end_date`` means "still a member"); lines starting with ``#`` are comments, or
* plain text with one ticker per line (``#`` comments and blank lines ignored), or
* an index fund's holdings export (iShares layout, e.g. the Russell 2000 ETF IWM):
  ``Ticker,Name,Sector,Asset Class,Market Value,Weight (%),...,Price`` with lines of fund
  information above the header and a disclaimer below the rows. The header is the first line
  with a ``Ticker`` field; rows whose ``Asset Class`` is not ``Equity`` (cash, futures) and rows
  whose ticker is empty, ``-`` or not ticker-like (the footer) are dropped. It is today's
  membership: a backtest over past years on it has survivorship bias.

The shipped universes live in ``quant_pipeline/universes/`` (``sp500.csv``: S&P 500 members since
1996 with their intervals). ``ticker_aliases.csv`` beside them maps renamed tickers (old -> new).
"""

from __future__ import annotations

import csv
from datetime import date
from importlib import resources
from pathlib import Path

import polars as pl

from quant_pipeline.core.data.frames import require_columns

UNIVERSE_SCHEMA: dict[str, pl.DataType] = {
    "ticker": pl.String,
    "start_date": pl.Date,
    "end_date": pl.Date,
}
ALIAS_SCHEMA: dict[str, pl.DataType] = {
    "old_ticker": pl.String,
    "new_ticker": pl.String,
    "since": pl.Date,
}


class UniverseError(ValueError):
    """A universe or alias file cannot be read (names the file, column and rows)."""


def shipped_path(name: str) -> Path:
    """Path of a file shipped in ``quant_pipeline/universes/`` (e.g. ``"sp500.csv"``)."""
    return Path(str(resources.files("quant_pipeline") / "universes" / name))


def default_universe_path() -> Path:
    """The default universe of the yahoo source: the shipped S&P 500 membership file."""
    return shipped_path("sp500.csv")


def _first_data_line(path: Path) -> str | None:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            stripped = line.strip()
            if stripped and not stripped.startswith("#"):
                return stripped
    return None


_EXPORT_COLUMNS = {"name", "sector", "weight (%)", "market value", "asset class", "price"}
_TICKER_LIKE = r"^[A-Z0-9][A-Z0-9.\-/ ]{0,11}$"
_HEADER_SEARCH_LINES = 60


def _header_line(path: Path) -> tuple[int, list[str]] | None:
    """(0-based line number, lower-cased fields) of the first line with a ``ticker`` field."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for number, line in enumerate(handle):
            if number >= _HEADER_SEARCH_LINES:
                return None
            if line.lstrip().startswith("#"):
                continue
            fields = [f.strip().strip('"').strip().lower() for f in next(csv.reader([line]), [])]
            if "ticker" in fields:
                return number, fields
    return None


def _export_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """Equity rows with ticker-like tickers of a holdings export (cash, futures, footer out)."""
    if "asset class" in frame.columns:
        asset = pl.col("asset class").str.strip_chars().str.to_lowercase()
        frame = frame.filter(asset.is_null() | (asset == "equity"))
    ticker = pl.col("ticker").str.strip_chars().str.to_uppercase()
    return frame.filter(ticker.str.contains(_TICKER_LIKE).fill_null(False))


def _parse_dates(frame: pl.DataFrame, path: Path, column: str) -> pl.Series:
    raw = frame[column].cast(pl.String).str.strip_chars()
    raw = pl.when(raw == "").then(None).otherwise(raw)
    parsed = frame.select(raw.str.to_date("%Y-%m-%d", strict=False).alias(column))[column]
    bad = frame.with_row_index("row").filter(parsed.is_null() & raw.is_not_null())
    if bad.height:
        rows = bad["row"].head(5).to_list()
        values = bad[column].head(5).to_list()
        raise UniverseError(
            f"{path}: column {column!r} has values that are not dates (YYYY-MM-DD) "
            f"in data rows {rows}: {values}"
        )
    return parsed


def load_universe(path: str | Path) -> pl.DataFrame:
    """Read a universe file into a frame ``ticker, start_date, end_date`` (dates nullable).

    A plain ticker list gets null dates (a member at all times). Tickers are upper-cased and
    stripped; exact duplicate rows are dropped. Sorted by ticker, start_date.
    """
    path = Path(path)
    if not path.is_file():
        raise UniverseError(f"universe file {path} does not exist")
    first = _first_data_line(path)
    if first is None:
        raise UniverseError(f"universe file {path} has no tickers")
    found = _header_line(path)
    if found is not None:
        skip, header = found
        export = skip > 0 or bool(_EXPORT_COLUMNS & set(header))
        frame = pl.read_csv(
            path,
            skip_rows=skip,
            comment_prefix=None if export else "#",
            infer_schema=False,
            truncate_ragged_lines=export,
            encoding="utf8-lossy",
        )
        frame = frame.rename({c: c.strip().lstrip("\ufeff").lower() for c in frame.columns})
        if export:
            frame = _export_rows(frame)
        out = frame.select(pl.col("ticker").str.strip_chars().str.to_uppercase())
        for column in ("start_date", "end_date"):
            if column in frame.columns:
                out = out.with_columns(_parse_dates(frame, path, column))
            else:
                out = out.with_columns(pl.lit(None, dtype=pl.Date).alias(column))
    elif "," in first:
        raise UniverseError(
            f"universe file {path}: a CSV universe needs a 'ticker' column; header is {first!r}"
        )
    else:
        lines = path.read_text(encoding="utf-8").splitlines()
        tickers = [ln.strip().upper() for ln in lines if ln.strip() and not ln.startswith("#")]
        out = pl.DataFrame({"ticker": tickers}).with_columns(
            pl.lit(None, dtype=pl.Date).alias("start_date"),
            pl.lit(None, dtype=pl.Date).alias("end_date"),
        )
    empty_rows = out.with_row_index("row").filter(
        pl.col("ticker").is_null() | (pl.col("ticker") == "")
    )
    if empty_rows.height:
        raise UniverseError(
            f"universe file {path}: empty ticker in data rows {empty_rows['row'].head(5).to_list()}"
        )
    backwards = out.with_row_index("row").filter(pl.col("end_date") < pl.col("start_date"))
    if backwards.height:
        raise UniverseError(
            f"universe file {path}: end_date before start_date in data rows "
            f"{backwards['row'].head(5).to_list()}"
        )
    return (
        out.select(UNIVERSE_SCHEMA.keys())
        .cast(UNIVERSE_SCHEMA)
        .unique(maintain_order=True)
        .sort("ticker", "start_date", nulls_last=False)
    )


def members_on(universe: pl.DataFrame, on: date) -> list[str]:
    """Tickers that are members on date ``on``: ``start_date <= on < end_date`` (nulls open).

    ``universe`` is a frame ``ticker, start_date, end_date`` as from :func:`load_universe`. The end
    date is exclusive: a company removed on D is no longer a member on D.
    """
    active = universe.filter(
        (pl.col("start_date").is_null() | (pl.col("start_date") <= on))
        & (pl.col("end_date").is_null() | (pl.col("end_date") > on))
    )
    return sorted(active["ticker"].unique().to_list())


END_DATE_CONVENTIONS: tuple[str, ...] = ("removal", "last_day")


def to_last_member_day(universe: pl.DataFrame, convention: str = "removal") -> pl.DataFrame:
    """Membership intervals with ``end_date`` the LAST day as a member (the warehouse convention).

    Universe files (like the S&P 500 file) give the removal date: the first day a company is no
    longer a member, so the replaced and the replacing company never overlap (AVP out and AAL in
    on 2015-03-23). ``raw.membership`` / ``curated.membership`` store both ends inclusive, so
    with ``convention='removal'`` the end date moves back one day; an interval that ends the day
    it starts (never a member at a close) is dropped. ``'last_day'`` returns ``universe`` as is.
    """
    if convention not in END_DATE_CONVENTIONS:
        raise UniverseError(
            f"membership end_date convention {convention!r} is not one of {END_DATE_CONVENTIONS}"
        )
    if convention == "last_day":
        return universe
    shifted = universe.with_columns(pl.col("end_date").dt.offset_by("-1d"))
    return shifted.filter(
        pl.col("end_date").is_null()
        | pl.col("start_date").is_null()
        | (pl.col("end_date") >= pl.col("start_date"))
    )


def current_members(universe: pl.DataFrame) -> list[str]:
    """Tickers whose membership has no end date (the current members); all tickers if none has."""
    current = universe.filter(pl.col("end_date").is_null())
    return sorted(current["ticker"].unique().to_list())


def load_aliases(path: str | Path | None = None) -> pl.DataFrame:
    """Read a ticker alias file ``old_ticker, new_ticker, since`` (default: the shipped one)."""
    path = Path(path) if path is not None else shipped_path("ticker_aliases.csv")
    frame = pl.read_csv(path, comment_prefix="#", infer_schema=False)
    require_columns(frame, ALIAS_SCHEMA, f"alias file {path}", UniverseError)
    return frame.select(
        pl.col("old_ticker").str.strip_chars().str.to_uppercase(),
        pl.col("new_ticker").str.strip_chars().str.to_uppercase(),
        _parse_dates(frame, path, "since"),
    )


def align_tickers(tickers: pl.Series, known: set[str], aliases: pl.DataFrame) -> pl.Series:
    """Rename ``tickers`` to the alias that appears in ``known`` (e.g. a price file's tickers).

    A membership list that says ``BKNG`` is matched to prices stored under ``PCLN`` when ``BKNG``
    is not among ``known`` and its alias ``PCLN`` is (either direction of an alias row). Tickers
    already in ``known``, or with no matching alias, are returned unchanged.
    """
    mapping: dict[str, str] = {}
    for old, new in aliases.select("old_ticker", "new_ticker").iter_rows():
        if new not in known and old in known:
            mapping[new] = old
        if old not in known and new in known:
            mapping[old] = new
    return tickers.replace(mapping)

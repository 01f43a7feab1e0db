"""The ``files`` source: a directory of CSV / Parquet files in a documented layout.

Layout (see ``docs/data_sources.md``)::

    <data_dir>/
      prices.(csv|csv.gz|parquet)             required  one row per ticker and date
      fundamentals.(csv|csv.gz|parquet)       optional  long (item, value) or wide (one column/item)
      securities.(csv|csv.gz|parquet)         optional  one row per ticker
      membership.* or <universe>_membership.* optional  ticker, start_date, end_date
      corporate_actions.*                     optional  ticker, date, action, value (split,
                                                        dividend, spinoff, stock_dividend)
      mapping.yaml                            optional  vendor column names -> canonical names

Column names are resolved through a mapping: for each canonical column a list of candidate
vendor names, the first present wins. The built-in mapping (:data:`BUILTIN_MAPPING`) knows the
canonical names and the vendor names of the S&P 500 dataset in ``../shared/data/sp500/`` (its
wide ``fundamentals.csv`` with "Earnings Before Interest and Tax" etc.), so that folder loads as it
is. A ``mapping.yaml`` (or the ``mapping`` argument) puts its names in front of the built-in ones;
a column it names explicitly must exist.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from quant_pipeline.core.data.frames import is_sorted_by
from quant_pipeline.core.data.schema import (
    ACTION_TYPES,
    FUNDAMENTAL_ITEMS,
    PRICE_VALUE_COLUMNS,
    RAW_CORPORATE_ACTIONS,
    RAW_FUNDAMENTALS,
    RAW_MEMBERSHIP,
    RAW_PRICES,
    RAW_SECURITIES,
    conform,
    empty,
)
from quant_pipeline.sources import price_files
from quant_pipeline.sources.base import FetchRequest, SourceError
from quant_pipeline.sources.universe import (
    UniverseError,
    align_tickers,
    load_aliases,
    load_universe,
    to_last_member_day,
)

SUFFIXES = (".parquet", ".csv.gz", ".csv")
DATASETS = ("prices", "fundamentals", "securities", "membership", "corporate_actions")

# Candidate vendor names per canonical column, first present wins. A candidate is a column name
# or {"sum": [names]} (row-wise sum, nulls counted as 0 unless all are null).
BUILTIN_MAPPING: dict[str, dict[str, Any]] = {
    "prices": {
        "columns": {
            "ticker": ["ticker", "symbol", "Ticker", "Symbol"],
            "date": ["date", "Date"],
            "open": ["open", "Open"],
            "high": ["high", "High"],
            "low": ["low", "Low"],
            "close": ["close", "Close"],
            "adj_close": ["adj_close", "Adj Close", "adjclose", "adjusted_close"],
            "volume": ["volume", "Volume"],
        },
        "required": ["ticker", "date", "close"],
    },
    "fundamentals": {
        "columns": {
            "ticker": ["ticker", "Ticker Symbol", "Ticker symbol", "symbol"],
            "period_end": ["period_end", "Period Ending", "period_ending", "fiscal_date"],
            "period_type": ["period_type"],
            "report_date": ["report_date", "filing_date"],
            "item": ["item"],
            "value": ["value"],
        },
        "required": ["ticker", "period_end"],
        "items": {
            "revenue": ["revenue", "Total Revenue"],
            "gross_profit": ["gross_profit", "Gross Profit"],
            "operating_income": ["operating_income", "Operating Income"],
            "ebit": ["ebit", "EBIT", "Earnings Before Interest and Tax"],
            "net_income": ["net_income", "Net Income"],
            # The S&P files have no dividends line: dividend_yield is null there. Either sign is
            # fine (curation keeps the amount paid).
            "dividends_paid": [
                "dividends_paid",
                "Dividends Paid",
                "Cash Dividends Paid",
                "Common Stock Dividend Paid",
            ],
            "total_assets": ["total_assets", "Total Assets"],
            "total_equity": ["total_equity", "Total Equity", "Stockholders Equity"],
            "total_debt": [
                "total_debt",
                "Total Debt",
                {"sum": ["Long-Term Debt", "Short-Term Debt / Current Portion of Long-Term Debt"]},
            ],
            "cash": ["cash", "Cash and Cash Equivalents", "Cash And Cash Equivalents"],
            "current_assets": ["current_assets", "Total Current Assets", "Current Assets"],
            "current_liabilities": [
                "current_liabilities",
                "Total Current Liabilities",
                "Current Liabilities",
            ],
            "net_ppe": ["net_ppe", "Fixed Assets", "Net PPE"],
            "shares_outstanding": ["shares_outstanding", "Estimated Shares Outstanding"],
            "short_term_debt": [
                "short_term_debt",
                "Short-Term Debt / Current Portion of Long-Term Debt",
                "Current Debt",
            ],
            # The S&P files have no preferred stock line ("Misc. Stocks" is not one): null there.
            "preferred_stock": ["preferred_stock", "Preferred Stock"],
            "minority_interest": ["minority_interest", "Minority Interest"],
        },
    },
    "securities": {
        "columns": {
            "ticker": ["ticker", "Ticker symbol", "Ticker Symbol", "symbol"],
            "name": ["name", "Security", "Name", "longName"],
            "sector": ["sector", "GICS Sector", "Sector"],
            "industry": ["industry", "GICS Sub Industry", "Industry"],
            "exchange": ["exchange", "Exchange"],
            "country": ["country", "Country"],
            "quote_type": ["quote_type"],
            "currency": ["currency", "Currency"],
            "shares_outstanding": ["shares_outstanding"],
            "float_shares": ["float_shares", "Float Shares", "floatShares", "Shares Float"],
            "market_cap": ["market_cap"],
        },
        "required": ["ticker"],
    },
    "membership": {
        "columns": {
            "universe": ["universe"],
            "ticker": ["ticker", "Ticker", "symbol"],
            "start_date": ["start_date"],
            "end_date": ["end_date"],
        },
        "required": ["ticker"],
    },
    "corporate_actions": {
        "columns": {
            "ticker": ["ticker"],
            "date": ["date"],
            "action": ["action"],
            "value": ["value"],
        },
        "required": ["ticker", "date", "action", "value"],
    },
}

_DATE_COLUMNS = {"date", "period_end", "report_date", "start_date", "end_date"}
_FLOAT_COLUMNS = {
    *PRICE_VALUE_COLUMNS,
    "value",
    "shares_outstanding",
    "float_shares",
    "market_cap",
}
_TABLE_SCHEMAS = {
    "prices": RAW_PRICES,
    "fundamentals": RAW_FUNDAMENTALS,
    "securities": RAW_SECURITIES,
    "membership": RAW_MEMBERSHIP,
    "corporate_actions": RAW_CORPORATE_ACTIONS,
}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def merge_mapping(user: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The built-in mapping with ``user`` entries put first (user names are marked explicit).

    ``user`` has the shape of ``mapping.yaml``: per dataset optional ``file``, ``columns``
    (canonical -> vendor name or list), ``items`` (fundamentals, wide layout), ``period_type``,
    ``universe``, ``date_format``.
    """
    merged: dict[str, dict[str, Any]] = {}
    user = dict(user or {})
    unknown = sorted(set(user) - set(DATASETS))
    if unknown:
        raise SourceError(f"mapping: unknown sections {unknown}; expected some of {DATASETS}")
    for dataset, builtin in BUILTIN_MAPPING.items():
        section = dict(user.get(dataset) or {})
        out: dict[str, Any] = {k: v for k, v in section.items() if k not in ("columns", "items")}
        out["required"] = list(builtin.get("required", []))
        for key in ("columns", "items"):
            base = builtin.get(key, {})
            given = section.get(key) or {}
            known = set(base) if key == "columns" else set(FUNDAMENTAL_ITEMS)
            bad = sorted(set(given) - known)
            if bad:
                raise SourceError(
                    f"mapping: {dataset}.{key} names {bad}, which are not canonical; "
                    f"use some of {sorted(known)}"
                )
            if key == "items" and dataset != "fundamentals":
                continue
            out[key] = {
                name: [("explicit", c) for c in _as_list(given.get(name))]
                + [("builtin", c) for c in _as_list(base.get(name))]
                for name in (base if key == "columns" else FUNDAMENTAL_ITEMS)
            }
        merged[dataset] = out
    return merged


def _rescan_files(names: list[str]) -> pl.LazyFrame:
    """The per-ticker scan of some of its files again (named as the scan names them)."""
    return price_files.scan_files([Path(n) for n in names])


def _resolve(
    candidates: list[tuple[str, Any]], columns: Iterable[str], file: Path, canonical: str
) -> pl.Expr | None:
    """Expression for the first candidate present in ``columns``; an explicit absent one raises."""
    present = set(columns)
    for origin, cand in candidates:
        if isinstance(cand, Mapping):
            parts = _as_list(cand.get("sum"))
            if parts and all(p in present for p in parts):
                values = [pl.col(p).cast(pl.Float64, strict=False) for p in parts]
                any_present = pl.any_horizontal([v.is_not_null() for v in values])
                total = pl.sum_horizontal(values)
                return pl.when(any_present).then(total).otherwise(None)
            if origin == "explicit":
                raise SourceError(
                    f"{file}: mapping for {canonical!r} sums columns {parts} but "
                    f"{[p for p in parts if p not in present]} are missing"
                )
        elif cand in present:
            return pl.col(cand)
        elif origin == "explicit":
            raise SourceError(
                f"{file}: mapping says {canonical!r} is column {cand!r}, which is missing; "
                f"columns are {sorted(present)[:40]}"
            )
    return None


def _read_csv(path: Path) -> pl.DataFrame:
    """Read a CSV as strings; a header one field shorter than the rows means an unnamed index."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        first = next(reader, None)
    if header is None:
        raise SourceError(f"{path}: file is empty")
    if first is not None and len(first) == len(header) + 1:
        # pandas' to_csv(index=True) with an unnamed index writes rows one field longer than
        # the header: the first field of every row is the row number.
        names = ["_row_index", *header]
        return pl.read_csv(
            path, has_header=False, skip_rows=1, new_columns=names, infer_schema=False
        ).drop("_row_index")
    try:
        return pl.read_csv(path, infer_schema=False)
    except pl.exceptions.ComputeError as exc:
        if "utf-8" in str(exc).lower():
            raise SourceError(f"{path}: {_bad_text(path)}") from exc
        raise SourceError(f"{path}: cannot be read as CSV: {exc}") from exc


def _read(path: Path) -> pl.DataFrame:
    """A file as a frame; a file that cannot be decoded raises SourceError naming it (and the
    line of the first bad byte, or the last whole line of a truncated gzip)."""
    try:
        if path.name.endswith(".parquet"):
            return pl.read_parquet(path)
        return _read_csv(path)
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: {_bad_text(path)}") from exc
    except (EOFError, OSError, pl.exceptions.ComputeError) as exc:
        if path.name.endswith(".gz"):
            raise SourceError(f"{path}: {_truncated_gzip(path, exc)}") from exc
        if isinstance(exc, pl.exceptions.ComputeError) and "utf-8" in str(exc).lower():
            raise SourceError(f"{path}: {_bad_text(path)}") from exc
        raise SourceError(f"{path}: cannot be read: {type(exc).__name__}: {exc}") from exc


def _bad_text(path: Path) -> str:
    """Where a file stops being UTF-8: line and byte of the first undecodable byte."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        return (
            f"line {line} is not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "save the file as UTF-8"
        )
    return "is not UTF-8 text; save it as UTF-8"


def _truncated_gzip(path: Path, exc: BaseException) -> str:
    """What a broken gzip file holds before it breaks (its last whole line)."""
    lines = 0
    try:
        with gzip.open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 14), b""):  # small: keep most lines
                lines += chunk.count(b"\n")
    except (EOFError, OSError):
        return (
            f"the gzip file is truncated or corrupt: it breaks after line {lines} "
            f"({type(exc).__name__}: {exc}); re-download or re-compress it"
        )
    return f"cannot be read: {type(exc).__name__}: {exc}"


def _bad_rows(frame: pl.DataFrame, raw: str, parsed: pl.Series) -> pl.DataFrame:
    original = frame[raw]
    if original.dtype == pl.String:
        given = original.is_not_null() & (original.str.strip_chars() != "")
    else:
        given = original.is_not_null()
    return frame.with_row_index("row").filter(given & parsed.is_null())


def _parse_column(
    frame: pl.DataFrame, expr: pl.Expr, name: str, file: Path, source_name: str, fmt: str | None
) -> pl.Series:
    """Evaluate ``expr`` and parse it to the canonical dtype; unparseable values raise."""
    raw = frame.select(expr.alias(name))[name]
    if name in _DATE_COLUMNS:
        target: pl.DataType = pl.Date
    elif name in _FLOAT_COLUMNS:
        target = pl.Float64
    else:
        target = pl.String
    if raw.dtype == target:
        return raw
    if target == pl.String:
        return raw.cast(pl.String).str.strip_chars()
    if raw.dtype == pl.String:
        text = raw.str.strip_chars()
        text = pl.select(pl.when(text == "").then(None).otherwise(text)).to_series()
        if target == pl.Date:
            # ISO first (fast); timestamps such as '2015-01-02 00:00:00' keep only their date.
            if fmt is not None:
                parsed = text.str.to_date(fmt, strict=False)
            else:
                parsed = text.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
            if fmt is None and parsed.null_count() > text.null_count():
                parsed = text.str.to_date(strict=False)
        else:
            parsed = text.cast(pl.Float64, strict=False)
    else:
        parsed = raw.cast(target, strict=False)
    check = frame.with_columns(raw.alias("__raw"))
    bad = _bad_rows(check, "__raw", parsed)
    if bad.height:
        rows = (bad["row"].head(5) + 2).to_list()  # +2: 1-based, after the header line
        values = bad["__raw"].head(5).to_list()
        kind = "a date" if target == pl.Date else "a number"
        raise SourceError(
            f"{file}: column {source_name!r} ({name}) has {bad.height} value(s) that are not "
            f"{kind}, e.g. lines {rows}: {values}"
        )
    return parsed.rename(name)


class FilesSource:
    """Raw frames from a directory of CSV / Parquet files (see the module docstring for layout).

    ``mapping`` is a dict shaped like ``mapping.yaml`` or a path to a YAML file; when omitted,
    ``<data_dir>/mapping.yaml`` is used if present. Every returned frame is conformed to its raw
    schema with ``source = 'files'`` and one ``ingested_at`` per source instance.
    """

    name = "files"

    def __init__(
        self,
        data_dir: str | Path,
        mapping: Mapping[str, Any] | str | Path | None = None,
        aliases: pl.DataFrame | None = None,
        universe: str | Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        if not self.data_dir.is_dir():
            raise SourceError(f"files source: data directory {self.data_dir} does not exist")
        if mapping is None and (self.data_dir / "mapping.yaml").is_file():
            mapping = self.data_dir / "mapping.yaml"
        if isinstance(mapping, str | Path):
            path = Path(mapping)
            try:
                mapping = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise SourceError(f"mapping file {path} cannot be read: {exc}") from exc
            if not isinstance(mapping, Mapping):
                raise SourceError(f"mapping file {path} must hold a mapping of dataset sections")
        self.mapping = merge_mapping(mapping)
        self.aliases = aliases if aliases is not None else load_aliases()
        # a universe file (ticker list, membership intervals or an index-holdings export) gives
        # the membership when the folder has no membership file
        self.universe_path = Path(universe) if universe is not None else None
        self.ingested_at = datetime.now(UTC)
        self._cache: dict[str, pl.DataFrame] = {}
        self._rejected: dict[str, pl.DataFrame] = {}
        self._tickers: list[str] | None = None

    # -- files ---------------------------------------------------------------------------------
    def path_of(self, dataset: str) -> Path | None:
        """The file holding ``dataset`` (mapping ``file`` first, then ``<dataset>.<suffix>``)."""
        given = self.mapping[dataset].get("file")
        if given:
            path = self.data_dir / given
            if not path.is_file():
                raise SourceError(f"mapping names {dataset} file {path}, which does not exist")
            return path
        for suffix in SUFFIXES:
            path = self.data_dir / f"{dataset}{suffix}"
            if path.is_file():
                return path
        if dataset == "membership":
            for suffix in SUFFIXES:
                found = sorted(self.data_dir.glob(f"*_membership{suffix}"))
                if found:
                    return found[0]
        return None

    def prices_folder(self) -> Path | None:
        """The folder of per-ticker price files: mapping ``prices.folder``, else ``prices/``."""
        given = self.mapping["prices"].get("folder")
        if given:
            folder = self.data_dir / given
            if not folder.is_dir():
                raise SourceError(f"mapping names prices folder {folder}, which does not exist")
            return folder
        folder = self.data_dir / "prices"
        return folder if folder.is_dir() else None

    def rejected_rows(self, dataset: str) -> pl.DataFrame:
        """Rows and files of ``dataset`` set aside by the last load (REJECTED_ROWS schema)."""
        if dataset not in self._rejected:
            self._load(dataset)
        return self._rejected.get(dataset, price_files.rejected([]))

    def _load(self, dataset: str) -> pl.DataFrame:
        if dataset in self._cache:
            return self._cache[dataset]
        path = self.path_of(dataset)
        if path is None and dataset == "prices":
            folder = self.prices_folder()
            if folder is None:
                raise SourceError(
                    f"files source: no prices file in {self.data_dir} (expected prices.csv, "
                    f"prices.csv.gz, prices.parquet or a prices/ folder of per-ticker files)"
                )
            frame = self._ticker_folder_prices(folder)
        elif path is None and dataset == "membership" and self.universe_path is not None:
            frame = self._universe_membership(self.universe_path)
        elif path is None:
            frame = empty(_TABLE_SCHEMAS[dataset])
        elif dataset == "prices" and not path.name.endswith(".parquet"):
            frame = self._long_file_prices(path)
        elif dataset == "fundamentals":
            frame = self._fundamentals(path)
        else:
            frame = self._table(dataset, path)
        frame = frame.with_columns(
            pl.lit(self.name).alias("source"),
            pl.lit(self.ingested_at).cast(pl.Datetime("us", "UTC")).alias("ingested_at"),
        )
        frame = conform(frame, _TABLE_SCHEMAS[dataset])
        if dataset == "prices":
            # Not cached: the source lives for the whole run, and 15M price rows held until its
            # end would weigh on every later step. Their tickers are what membership needs.
            self._tickers = sorted(frame["ticker"].unique().to_list())
        else:
            self._cache[dataset] = frame
        return frame

    def _columns(self, dataset: str, frame: pl.DataFrame, path: Path) -> dict[str, pl.Series]:
        section = self.mapping[dataset]
        fmt = section.get("date_format")
        out: dict[str, pl.Series] = {}
        for name, candidates in section["columns"].items():
            expr = _resolve(candidates, frame.columns, path, name)
            if expr is None:
                if name in section["required"]:
                    tried = [c for _, c in candidates if isinstance(c, str)]
                    raise SourceError(
                        f"{path}: required column {name!r} is missing (looked for {tried}); "
                        f"columns are {frame.columns[:40]}. Name it in mapping.yaml under "
                        f"{dataset}.columns.{name}"
                    )
                continue
            source_name = expr.meta.output_name(raise_if_undetermined=False) or name
            out[name] = _parse_column(frame, expr, name, path, source_name, fmt)
        nulls = [n for n in section["required"] if out[n].null_count()]
        if nulls:
            name = nulls[0]
            rows = (pl.arg_where(out[name].is_null(), eager=True).head(5) + 2).to_list()
            raise SourceError(f"{path}: required column {name!r} is empty on lines {rows}")
        return out

    def _table(self, dataset: str, path: Path) -> pl.DataFrame:
        raw = _read(path)
        cols = self._columns(dataset, raw, path)
        frame = pl.DataFrame(cols)
        if "ticker" in frame.columns:
            frame = frame.with_columns(pl.col("ticker").str.to_uppercase())
        if dataset == "membership" and "universe" not in frame.columns:
            universe = self.mapping["membership"].get("universe") or self._universe_name(path)
            frame = frame.with_columns(pl.lit(universe).alias("universe"))
        if dataset == "corporate_actions":
            bad = frame.with_row_index("row").filter(~pl.col("action").is_in(ACTION_TYPES))
            if bad.height:
                raise SourceError(
                    f"{path}: column 'action' must be one of {ACTION_TYPES}; lines "
                    f"{(bad['row'].head(5) + 2).to_list()} have {bad['action'].head(5).to_list()}"
                )
        return frame

    def _price_columns(
        self, columns: list[str], file: Path, ticker: pl.Expr | None
    ) -> tuple[dict[str, pl.Expr], list[str]]:
        """Canonical price column -> expression, and the required ones that are missing."""
        section = self.mapping["prices"]
        exprs: dict[str, pl.Expr] = {}
        missing: list[str] = []
        for name, candidates in section["columns"].items():
            if name == "ticker" and ticker is not None:
                exprs[name] = ticker
                continue
            expr = _resolve(candidates, columns, file, name)
            if expr is not None:
                exprs[name] = expr
            elif name in section["required"]:
                missing.append(next(c for _, c in candidates if isinstance(c, str)))
        return exprs, missing

    def _parsed_prices(
        self,
        scan: pl.LazyFrame,
        columns: dict[str, pl.Expr],
        base: int = 0,
        rescan: Callable[[list[str]], pl.LazyFrame] | None = None,
    ) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        """(good rows with ticker and ``__row``, set-aside rows, file offsets) of one scan
        (``rescan``: see ``price_files.parse_scan``)."""
        fmt = self.mapping["prices"].get("date_format")
        good, bad, offsets = price_files.parse_scan(scan, columns, fmt, base, rescan)
        if "ticker" not in columns:
            good = price_files.with_file_tickers(good, offsets)
        return good, price_files.describe_bad_rows(bad, offsets, columns), offsets

    def _deduplicated(
        self, parts: list[tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]], set_aside: list
    ) -> pl.DataFrame:
        offsets = pl.concat([p[2] for p in parts]).sort("first")
        rejected = [*set_aside, *(p[1] for p in parts)]
        goods = [pl.concat([p[0] for p in parts], how="diagonal")]
        parts.clear()
        # goods.pop() hands over the last reference: the sort inside can free the unsorted copy
        prices, conflicts = price_files.drop_conflicting_duplicates(goods.pop(), offsets)
        rejected.append(conflicts)
        self._rejected["prices"] = pl.concat(rejected, how="vertical")
        return prices

    def _long_file_prices(self, path: Path) -> pl.DataFrame:
        """prices.csv(.gz): bad rows set aside with their line, not fatal; missing columns are."""
        raw = _read(path)
        columns, missing = self._price_columns(raw.columns, path, None)
        if missing:
            raise SourceError(
                f"{path}: required column {missing[0]!r} is missing (required: {missing}); "
                f"columns are {raw.columns[:40]}. Name it in mapping.yaml under prices.columns"
            )
        scan = raw.lazy().with_columns(
            pl.lit(str(path)).alias("__file"), pl.int_range(pl.len()).alias("__row")
        )
        return self._deduplicated([self._parsed_prices(scan, columns)], [])

    def _ticker_folder_prices(self, folder: Path) -> pl.DataFrame:
        """A folder of per-ticker files (price_files): one streaming scan per header layout,
        the ticker from each file name."""

        def lacking(header: list[str]) -> list[str]:
            return self._price_columns(header, folder, pl.lit(None))[1]

        groups, set_aside = price_files.ticker_file_groups(folder, lacking)
        parts, aside, base = [], [set_aside], 0
        for header, files in groups.items():
            fields = [c.strip().strip('"') for c in header.split(",")]
            columns, _ = self._price_columns(fields, folder, pl.lit(None))
            columns.pop("ticker")  # from each file's name
            try:
                part = self._parsed_prices(
                    price_files.scan_files(files), columns, base, _rescan_files
                )
            except (pl.exceptions.PolarsError, OSError):
                broken = price_files.unparseable_files(files)
                aside.append(price_files.rejected(broken))
                files = [f for f in files if str(f) not in {b["file"] for b in broken}]
                if not files:
                    continue
                part = self._parsed_prices(
                    price_files.scan_files(files), columns, base, _rescan_files
                )
            aside.append(price_files.header_only_files(files, part[2]))
            base += int(part[2]["rows"].sum())
            parts.append(part)
            del part  # parts holds the only reference (freed before the sort)
        if not parts:
            listed = set_aside.head(5).select(pl.col("file").str.replace(r"^.*/", ""), "reason")
            raise SourceError(
                f"files source: none of the {len(price_files.list_ticker_files(folder))} files in "
                f"{folder} is usable; e.g. " + "; ".join(f"{f}: {r}" for f, r in listed.rows())
            )
        return self._deduplicated(parts, aside)

    def _universe_membership(self, path: Path) -> pl.DataFrame:
        """Membership from a universe file (sources/universe.py layouts; its end dates are
        removal dates, converted by :meth:`membership` as the yahoo source does)."""
        try:
            universe = load_universe(path)
        except UniverseError as exc:
            raise SourceError(str(exc)) from exc
        return universe.with_columns(pl.lit(path.stem).alias("universe"))

    def _universe_name(self, path: Path) -> str:
        stem = path.name.split(".")[0]
        if stem.endswith("_membership"):
            return stem.removesuffix("_membership")
        return self.data_dir.resolve().name

    def _fundamentals(self, path: Path) -> pl.DataFrame:
        raw = _read(path)
        section = self.mapping["fundamentals"]
        layout = section.get("layout")
        if layout is None:
            layout = "long" if {"item", "value"} <= set(raw.columns) else "wide"
        if layout not in ("long", "wide"):
            raise SourceError(
                f"mapping: fundamentals.layout must be 'long' or 'wide', not {layout}"
            )
        if layout == "long":
            section["required"] = ["ticker", "period_end", "item", "value"]
            long = pl.DataFrame(self._columns("fundamentals", raw, path))
            names = {str(k): str(v) for k, v in (section.get("item_names") or {}).items()}
            long = long.with_columns(pl.col("item").replace(names))
        else:
            keys = self._columns("fundamentals", raw, path)
            items: dict[str, pl.Series] = {}
            for item, candidates in section["items"].items():
                expr = _resolve(candidates, raw.columns, path, item)
                if expr is not None:
                    src = expr.meta.output_name(raise_if_undetermined=False) or item
                    items[item] = _parse_column(raw, expr, "value", path, src, None).rename(item)
            if not items:
                raise SourceError(
                    f"{path}: no fundamental item column found (wide layout); looked for e.g. "
                    f"'Total Revenue', 'Net Income'. Map them in mapping.yaml under "
                    f"fundamentals.items"
                )
            wide = pl.DataFrame({**keys, **items})
            long = wide.unpivot(
                index=[k for k in keys if k in wide.columns],
                on=list(items),
                variable_name="item",
                value_name="value",
            ).filter(pl.col("value").is_not_null())
        long = long.with_columns(pl.col("ticker").str.to_uppercase()).filter(
            pl.col("item").is_in(list(FUNDAMENTAL_ITEMS))
        )
        if "period_type" not in long.columns:
            constant = section.get("period_type")
            if constant is not None:
                if constant not in ("Q", "A"):
                    raise SourceError(
                        f"mapping: fundamentals.period_type must be Q or A: {constant}"
                    )
                long = long.with_columns(pl.lit(constant).alias("period_type"))
            else:
                long = long.with_columns(_infer_period_type(long).alias("period_type"))
        bad = long.filter(~pl.col("period_type").is_in(["Q", "A"]))
        if bad.height:
            raise SourceError(
                f"{path}: period_type must be 'Q' or 'A'; found {bad['period_type'].unique()[:5]}"
            )
        return long

    def provides(self, dataset: str) -> bool:
        """True when the folder holds a file for ``dataset`` (prices are always required)."""
        if dataset == "membership" and self.universe_path is not None:
            return True
        return dataset == "prices" or self.path_of(dataset) is not None

    # -- Source interface -------------------------------------------------------------------------
    def universe(self) -> list[str]:
        """Tickers present in the prices file."""
        if self._tickers is None:
            self._load("prices")
        return list(self._tickers or [])

    def prices(self, request: FetchRequest) -> pl.DataFrame:
        """Raw prices (RAW_PRICES); ``adj_close`` null when the file has none. Window applied."""
        frame = _filter_tickers(self._load("prices"), request)
        if request.start is not None:
            frame = frame.filter(pl.col("date") >= request.start)
        if request.end is not None:
            frame = frame.filter(pl.col("date") <= request.end)
        if request.per_ticker_start:
            starts = pl.DataFrame(
                {
                    "ticker": list(request.per_ticker_start),
                    "_start": list(request.per_ticker_start.values()),
                },
                schema={"ticker": pl.String, "_start": pl.Date},
            )
            frame = (
                frame.join(starts, on="ticker", how="left")
                .filter(pl.col("_start").is_null() | (pl.col("date") >= pl.col("_start")))
                .drop("_start")
            )
        # loaded prices are one row per key in key order already: skip a 15M-row string sort
        return frame if is_sorted_by(frame, ["ticker", "date"]) else frame.sort("ticker", "date")

    def corporate_actions(self, request: FetchRequest) -> pl.DataFrame:
        """Splits and dividends from ``corporate_actions.*`` (empty when the file is absent)."""
        return _filter_tickers(self._load("corporate_actions"), request)

    def fundamentals(self, request: FetchRequest) -> pl.DataFrame:
        """Long fundamentals (RAW_FUNDAMENTALS), canonical items only; wide files are melted."""
        return _filter_tickers(self._load("fundamentals"), request)

    def securities(self, request: FetchRequest) -> pl.DataFrame:
        """Profiles from ``securities.*`` (RAW_SECURITIES)."""
        return _filter_tickers(self._load("securities"), request)

    def membership(self, request: FetchRequest) -> pl.DataFrame:
        """Membership intervals (RAW_MEMBERSHIP) with tickers aligned to the price file's.

        A membership list written with today's tickers (``BKNG``) is matched to the ticker the
        prices use (``PCLN``) through the alias file, so membership joins to prices.
        """
        frame = self._load("membership")
        if frame.height:
            known = set(self.universe())
            frame = frame.with_columns(align_tickers(frame["ticker"], known, self.aliases))
            # Files give removal dates unless the mapping says `end_date_convention: last_day`.
            convention = self.mapping["membership"].get("end_date_convention", "removal")
            frame = to_last_member_day(frame, convention)
        return _filter_tickers(frame, request)


def _infer_period_type(frame: pl.DataFrame) -> pl.Expr:
    """'Q' when a ticker's periods are typically < 200 days apart, else 'A' (single period: A)."""
    gaps = (
        frame.select("ticker", "period_end")
        .unique()
        .sort("ticker", "period_end")
        .with_columns(gap=pl.col("period_end").diff().dt.total_days().over("ticker"))
        .group_by("ticker")
        .agg(pl.col("gap").median())
    )
    quarterly = set(gaps.filter(pl.col("gap") < 200)["ticker"].to_list())
    return pl.when(pl.col("ticker").is_in(list(quarterly))).then(pl.lit("Q")).otherwise(pl.lit("A"))


def _filter_tickers(frame: pl.DataFrame, request: FetchRequest) -> pl.DataFrame:
    if request.tickers is None:
        return frame
    return frame.filter(pl.col("ticker").is_in(list(request.tickers)))

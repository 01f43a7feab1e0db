"""Prices as vendors ship them: one file per ticker, and rows that are set aside, not fatal.

**One file per ticker.** A folder of per-ticker files (any extension: ``aapl.us.txt``,
``MSFT.csv``), each with a header such as ``Date,Open,High,Low,Close,Volume,OpenInt``, is read
with one polars multi-file scan (``pl.scan_csv`` over the list of files, every column as text),
parsed batch by batch by the streaming engine so the text is never held whole.
The ticker comes from the file name: the part before the first dot, upper-cased, with ``_``
read as ``-`` (``aapl.us.txt`` → ``AAPL``, ``brk-b.us.txt`` → ``BRK-B``, ``agm_a.us.txt`` →
``AGM-A``). Files are grouped by header line so each scan sees one layout. Empty files, files
that are not text and files whose header lacks a required column are listed in the rejected
rows (line null) and skipped; a scan that fails is retried file by file to name the culprits.

**Quarantine.** Rows whose date is empty or not a date, whose numbers are not numbers, repeated
header lines, and conflicting duplicates of one (ticker, date) (two files or two lines giving
different values) go to a rejected frame (:data:`REJECTED_ROWS`: file, line, ticker, reason, the
row's text) instead of failing the load. Identical duplicates are kept once. Impossible prices
(close <= 0, high < low, ...) are refused later by curation into ``curated.rejected_prices``.

``line`` is the 1-based line in the file (the header is line 1), counting the data rows polars
reads; blank lines are skipped by the reader and not counted. Rows carry a global row number
only; each file's first row number (the offsets) gives back a row's file, line and, in the
per-ticker layout, ticker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from quant_pipeline.core.data.schema import PRICE_VALUE_COLUMNS
from quant_pipeline.sources.base import SourceError

REJECTED_ROWS: dict[str, pl.DataType] = {
    "dataset": pl.String(),
    "file": pl.String(),
    "line": pl.Int64(),
    "ticker": pl.String(),
    "rule": pl.String(),
    "reason": pl.String(),
    "content": pl.String(),
}
PRICE_NUMBERS = PRICE_VALUE_COLUMNS
_FILE, _ROW = "__file", "__row"
_HEADER_BYTES = 4096
_MAX_CONFLICT_FILES = 3
OFFSETS_SCHEMA: dict[str, pl.DataType] = {
    "file": pl.String(),
    "first": pl.Int64(),
    "rows": pl.Int64(),
    "file_ticker": pl.String(),
}


def ticker_from_file_name(name: str) -> str:
    """``aapl.us.txt`` → ``AAPL``; ``brk-b.us.txt`` → ``BRK-B``; ``agm_a.us.txt`` → ``AGM-A``."""
    return name.split(".", 1)[0].strip().upper().replace("_", "-")


def rejected(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """A REJECTED_ROWS frame from dicts (missing keys null)."""
    return pl.DataFrame(
        [{k: r.get(k) for k in REJECTED_ROWS} for r in rows], schema=REJECTED_ROWS, orient="row"
    )


def _header(path: Path) -> tuple[str | None, str | None]:
    """(header line, None) or (None, why the file is unusable: starts with its rule name)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(_HEADER_BYTES)
    except OSError as exc:
        return None, f"unreadable file: {exc}"
    if not head.strip():
        return None, "empty file"
    if b"\x00" in head:
        return None, "not a CSV (binary content)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("latin-1")
    return text.splitlines()[0].strip().lstrip("\ufeff"), None


def list_ticker_files(folder: Path) -> list[Path]:
    """Every visible file directly inside ``folder`` (any extension), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def ticker_file_groups(
    folder: Path, required: Callable[[list[str]], list[str]]
) -> tuple[dict[str, list[Path]], pl.DataFrame]:
    """The usable files of ``folder`` grouped by header line, and the files set aside.

    ``required(columns)`` returns the required canonical columns a header lacks (empty list =
    usable). Only the first bytes of each file are read here. Raises SourceError when the
    folder holds no file at all.
    """
    files = list_ticker_files(folder)
    if not files:
        raise SourceError(f"files source: the prices folder {folder} holds no files")
    groups: dict[str, list[Path]] = {}
    bad: list[dict[str, Any]] = []
    lacking: dict[str, list[str]] = {}  # thousands of files share a handful of headers
    for path in files:
        header, problem = _header(path)
        if problem is None:
            columns = [c.strip().strip('"') for c in header.split(",")]
            if header not in lacking:
                lacking[header] = required(columns)
            missing = lacking[header]
            if missing:
                problem = f"missing columns: {missing}; header is {columns[:20]}"
        if problem is not None:
            rule = problem.split(":")[0].split(" (")[0]
            bad.append({"dataset": "prices", "file": str(path), "rule": rule, "reason": problem})
            continue
        groups.setdefault(header, []).append(path)
    return groups, rejected(bad)


def scan_files(files: list[Path]) -> pl.LazyFrame:
    """One lazy multi-file scan: every column as text, ``__file`` and a global ``__row``."""
    return pl.scan_csv(
        [str(f) for f in files],
        include_file_paths=_FILE,
        row_index_name=_ROW,
        infer_schema=False,
        truncate_ragged_lines=True,
    )


def unparseable_files(files: list[Path]) -> list[dict[str, Any]]:
    """After a failed scan, the files that fail on their own (the error path only)."""
    bad = []
    for path in files:
        try:
            scan_files([path]).select(pl.len()).collect()
        except (pl.exceptions.PolarsError, OSError) as exc:
            reason = f"does not parse: {str(exc).splitlines()[0][:200]}"
            bad.append(
                {"dataset": "prices", "file": str(path), "rule": "not a CSV", "reason": reason}
            )
    return bad


def _text(expr: pl.Expr) -> pl.Expr:
    """A column as stripped text, an empty value as null."""
    text = expr.cast(pl.String).str.strip_chars()
    return pl.when(text.str.len_bytes() > 0).then(text)


def _date(fmt: str | None) -> pl.Expr:
    if fmt is not None:
        return pl.col("date").str.to_date(fmt, strict=False)
    # ISO (a timestamp keeps its date), else compact YYYYMMDD as some vendors write it
    iso = pl.col("date").str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
    return pl.coalesce(iso, pl.col("date").str.to_date("%Y%m%d", strict=False))


def _parse(
    scan: pl.LazyFrame, columns: Mapping[str, pl.Expr], fmt: str | None, base: int
) -> tuple[pl.LazyFrame, pl.LazyFrame, pl.Expr]:
    """(text columns + ``__row`` + ``__file``, those plus the parsed ``_date`` / ``_<number>``
    columns, the bad-row condition) of a scan."""
    names = list(columns)
    raw = scan.select(
        *(_text(expr).alias(name) for name, expr in columns.items()),
        (pl.col(_ROW).cast(pl.Int64) + base).alias(_ROW),
        _FILE,
    )
    numbers = [c for c in PRICE_NUMBERS if c in names]
    parsed = raw.with_columns(
        _date(fmt).alias("_date"),
        *(pl.col(c).cast(pl.Float64, strict=False).alias(f"_{c}") for c in numbers),
    )
    # One cheap null test per column finds the bad rows; reasons are spelled out for those only.
    bad = pl.col("_date").is_null() | pl.col("_close").is_null()
    if "ticker" in names:
        bad = bad | pl.col("ticker").is_null()
    for c in numbers:
        bad = bad | (pl.col(f"_{c}").is_null() & pl.col(c).is_not_null())
    return raw, parsed, bad


def parse_scan(
    scan: pl.LazyFrame,
    columns: Mapping[str, pl.Expr],
    fmt: str | None,
    base: int = 0,
    rescan: Callable[[list[str]], pl.LazyFrame] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Parse a text scan with the streaming engine: (good rows, bad rows, file offsets).

    ``columns``: canonical name → expression over the scan (mapping resolved); without a
    ``ticker`` entry the ticker comes from each file's name (per-ticker layout). ``base`` is
    added to ``__row`` so several scans share one row numbering. Good rows: ticker, date, the
    price numbers, ``__row``. Bad rows: the text and parsed columns, ``__row``. Offsets
    (OFFSETS_SCHEMA): each file's first ``__row``, its row count and file-name ticker, which
    give every row its file and line without keeping a file name per row. Only typed columns
    of the good rows are ever held in memory: the text is parsed batch by batch.

    ``rescan(files)``, when given, scans some of the files again (the same layout, as
    :func:`scan_files` does): the bad rows are then taken from a second parse of only the
    files that lost rows, instead of a second parse of every file (each query of a streaming
    ``collect_all`` reads the files again; at 7,000 files a full pass is several seconds).
    """
    names = list(columns)
    raw, parsed, bad = _parse(scan, columns, fmt, base)
    numbers = [c for c in PRICE_NUMBERS if c in names]
    keep = [pl.col("ticker").str.to_uppercase()] if "ticker" in names else []
    good_q = parsed.filter(~bad).select(
        *keep,
        pl.col("_date").alias("date"),
        *(pl.col(f"_{c}").alias(c) for c in numbers),
        _ROW,
    )
    bad_q = parsed.filter(bad).drop(_FILE)
    if rescan is None:
        offsets_q = raw.group_by(_FILE).agg(
            pl.col(_ROW).min().alias("first"), pl.len().cast(pl.Int64).alias("rows")
        )
        good, bad_rows, offsets = pl.collect_all([good_q, bad_q, offsets_q], engine="streaming")
    else:
        # the row count of each file needs no parsing of its fields
        offsets_q = (
            scan.select(_FILE, (pl.col(_ROW).cast(pl.Int64) + base).alias(_ROW))
            .group_by(_FILE)
            .agg(pl.col(_ROW).min().alias("first"), pl.len().cast(pl.Int64).alias("rows"))
        )
        good, offsets = pl.collect_all([good_q, offsets_q], engine="streaming")
    offsets = offsets.rename({_FILE: "file"}).with_columns(
        pl.col("file")
        .str.replace(r"^.*[/\\]", "")
        .str.split(".")
        .list.first()
        .str.strip_chars()
        .str.to_uppercase()
        .str.replace_all("_", "-", literal=True)
        .alias("file_ticker")
    )
    offsets = offsets.select(list(OFFSETS_SCHEMA)).cast(OFFSETS_SCHEMA).sort("first")
    if not good[_ROW].is_sorted():
        good = good.sort(_ROW)
    if rescan is not None:
        schema = bad_q.collect_schema()
        bad_rows = _bad_rows_again(good, offsets, rescan, columns, fmt, schema)
    return good, bad_rows, offsets


def _bad_rows_again(
    good: pl.DataFrame,
    offsets: pl.DataFrame,
    rescan: Callable[[list[str]], pl.LazyFrame],
    columns: Mapping[str, pl.Expr],
    fmt: str | None,
    schema: pl.Schema,
) -> pl.DataFrame:
    """The bad rows of :func:`parse_scan`, from a second parse of the files that have fewer
    good rows than rows; their ``__row`` put back on the first scan's numbering."""
    index = offsets["first"].search_sorted(good[_ROW], side="right") - 1
    kept = np.bincount(index.to_numpy(), minlength=offsets.height)
    short = offsets.filter(pl.Series(kept < offsets["rows"].to_numpy()))
    if short.is_empty():
        return pl.DataFrame(schema=schema)
    # files in the first scan's order: in the second scan each starts where the ones before
    # it end, so a row's place in its file is the same in both
    short = short.with_columns(_again=pl.col("rows").cum_sum() - pl.col("rows"))
    _, parsed, bad = _parse(rescan(short["file"].to_list()), columns, fmt, 0)
    again = parsed.filter(bad).collect(engine="streaming")
    return (
        again.join(short.select(pl.col("file").alias(_FILE), "first", "_again"), on=_FILE)
        .with_columns((pl.col(_ROW) - pl.col("_again") + pl.col("first")).alias(_ROW))
        .select(list(schema))
        .sort(_ROW)
    )


def locate(frame: pl.DataFrame, offsets: pl.DataFrame) -> pl.DataFrame:
    """``frame`` (with ``__row``) plus ``file``, ``line`` (header = line 1) and ``file_ticker``."""
    return (
        frame.sort(_ROW)
        .join_asof(offsets, left_on=_ROW, right_on="first", strategy="backward")
        .with_columns((pl.col(_ROW) - pl.col("first") + 2).alias("line"))
    )


def with_file_tickers(good: pl.DataFrame, offsets: pl.DataFrame) -> pl.DataFrame:
    """Good rows of a per-ticker scan with ``ticker`` from their file name (first column) and
    ``_tkey``, the ticker's rank (a number to sort by instead of 15M strings)."""
    index = offsets["first"].search_sorted(good[_ROW], side="right") - 1
    keys = offsets.select(pl.col("file_ticker").rank("dense").cast(pl.UInt32))["file_ticker"]
    return good.select(
        offsets["file_ticker"].gather(index).alias("ticker"),
        pl.all(),
        keys.gather(index).alias("_tkey"),
    )


def describe_bad_rows(
    bad_rows: pl.DataFrame, offsets: pl.DataFrame, columns: Mapping[str, pl.Expr]
) -> pl.DataFrame:
    """REJECTED_ROWS for the bad rows of :func:`parse_scan` (rule and reason per row)."""
    located = locate(bad_rows, offsets)
    if "ticker" not in bad_rows.columns:
        located = located.with_columns(pl.col("file_ticker").alias("ticker"))
    checks = _row_checks(list(bad_rows.columns), columns)
    reason = pl.concat_str(
        [pl.when(cond).then(text_expr) for cond, _, text_expr in checks],
        separator="; ",
        ignore_nulls=True,
    )
    rule = pl.coalesce([pl.when(cond).then(pl.lit(name)) for cond, name, _ in checks])
    content = pl.concat_str(
        [pl.col(c).fill_null("") for c in columns if c != "ticker"], separator=","
    )
    return located.select(
        pl.lit("prices").alias("dataset"),
        "file",
        pl.col("line").cast(pl.Int64),
        pl.col("ticker").str.to_uppercase(),
        rule.alias("rule"),
        reason.alias("reason"),
        content.alias("content"),
    ).cast(REJECTED_ROWS)


def header_only_files(files: list[Path], offsets: pl.DataFrame) -> pl.DataFrame:
    """Files of a scan that gave no row (a header and nothing else)."""
    with_rows = set(offsets["file"].to_list())
    return rejected(
        [
            {"dataset": "prices", "file": str(p), "rule": "empty file", "reason": "header only"}
            for p in files
            if str(p) not in with_rows
        ]
    )


def _row_checks(
    present: list[str], columns: Mapping[str, pl.Expr]
) -> list[tuple[pl.Expr, str, pl.Expr]]:
    """(condition, rule, reason) triples; a condition is true when the row must be set aside."""
    date_header = columns["date"].meta.output_name(raise_if_undetermined=False) or "date"
    close_header = columns["close"].meta.output_name(raise_if_undetermined=False) or "close"
    header_row = (pl.col("date").str.to_lowercase() == date_header.lower()) | (
        pl.col("close").str.to_lowercase() == close_header.lower()
    )
    not_header = ~header_row.fill_null(False)
    checks: list[tuple[pl.Expr, str, pl.Expr]] = [
        (header_row, "repeated header", pl.lit("repeated header row")),
        (pl.col("ticker").is_null() & not_header, "missing value", pl.lit("ticker is empty")),
    ]
    if "ticker" not in present:
        checks.pop()
    checks += [
        (pl.col("date").is_null() & not_header, "missing value", pl.lit("date is empty")),
        (
            pl.col("date").is_not_null() & pl.col("_date").is_null() & not_header,
            "bad date",
            pl.format("date '{}' is not a date", pl.col("date")),
        ),
        (pl.col("close").is_null() & not_header, "missing value", pl.lit("close is empty")),
    ]
    for c in PRICE_NUMBERS:
        if c not in present:
            continue
        checks.append(
            (
                pl.col(c).is_not_null() & pl.col(f"_{c}").is_null() & not_header,
                "bad number",
                pl.format("{} '{}' is not a number", pl.lit(c), pl.col(c)),
            )
        )
    return [(cond.fill_null(False), rule, why) for cond, rule, why in checks]


def drop_conflicting_duplicates(
    prices: pl.DataFrame, offsets: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One row per (ticker, date): identical duplicates kept once, conflicting ones set aside.

    ``prices``: parsed rows with ticker, date, the price numbers and ``__row``; ``offsets``
    from :func:`parse_scan` locate a row's file and line. Two rows of one key with different
    values cannot both be right and nothing says which is: every row of that key goes to the
    rejected frame, with the files involved in the reason. Returns (rows sorted by ticker and
    date without ``__row``, rejected rows).
    """
    # per-ticker scans carry the ticker's rank: sorting numbers is much cheaper than strings
    key = "_tkey" if "_tkey" in prices.columns else "ticker"
    ordered = prices.sort(key, "date", _ROW)
    del prices
    same_as_previous = (
        (pl.col(key) == pl.col(key).shift(1)) & (pl.col("date") == pl.col("date").shift(1))
    ).fill_null(False)
    dup = ordered.select(same_as_previous | same_as_previous.shift(-1).fill_null(False))
    dup = dup.to_series()
    if not dup.any():
        return ordered.drop(_ROW, "_tkey", strict=False), rejected([])
    values = [c for c in PRICE_NUMBERS if c in ordered.columns]
    dups = locate(ordered.filter(dup), offsets)
    per_key = dups.group_by("ticker", "date").agg(
        pl.struct(values).n_unique().alias("_versions"),
        pl.col("file").unique().sort().alias("_files"),
    )
    conflicts = per_key.filter(pl.col("_versions") > 1)
    conflicting = dups.join(conflicts, on=["ticker", "date"], how="inner")
    names = pl.col("_files").list.eval(pl.element().str.replace(r"^.*[/\\]", ""))
    rejects = conflicting.select(
        pl.lit("prices").alias("dataset"),
        "file",
        pl.col("line").cast(pl.Int64),
        "ticker",
        pl.lit("conflicting duplicate").alias("rule"),
        pl.format(
            "conflicting duplicate: {} rows for {} on {} with different values (files {})",
            pl.col("_versions"),
            pl.col("ticker"),
            pl.col("date"),
            names.list.head(_MAX_CONFLICT_FILES).list.join(", "),
        ).alias("reason"),
        pl.concat_str(
            [pl.col(c).cast(pl.String).fill_null("") for c in values], separator=","
        ).alias("content"),
    ).cast(REJECTED_ROWS)
    bad_rows = conflicting.get_column(_ROW)
    drop = ordered.select(same_as_previous | pl.col(_ROW).is_in(bad_rows.implode())).to_series()
    ordered = ordered.drop(_ROW, "_tkey", strict=False)
    return ordered.filter(~drop), rejects

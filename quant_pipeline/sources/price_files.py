"""Prices as vendors ship them: one file per ticker, and rows that are set aside, not fatal.

**One file per ticker.** A folder of per-ticker files (any extension: ``aapl.us.txt``,
``MSFT.csv``), each with a header such as ``Date,Open,High,Low,Close,Volume,OpenInt``, is read
with one polars multi-file scan (``pl.scan_csv`` over the list of files, every column as text).
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
reads; blank lines are skipped by the reader and not counted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import polars as pl

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
PRICE_NUMBERS = ("open", "high", "low", "close", "adj_close", "volume")
_FILE, _LINE, _TICKER = "__file", "__line", "__file_ticker"
_HEADER_BYTES = 4096
_MAX_CONFLICT_FILES = 3


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


def _scan(files: list[Path]) -> pl.DataFrame:
    frame = pl.scan_csv(
        [str(f) for f in files],
        include_file_paths=_FILE,
        infer_schema=False,
        truncate_ragged_lines=True,
    ).collect()
    return frame


def read_ticker_folder(
    folder: Path, required: Callable[[list[str]], list[str]]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """All per-ticker files of ``folder`` as one text frame, plus the files set aside.

    ``required(columns)`` returns the required canonical columns a header lacks (empty list =
    usable). The frame has every file column as text plus ``__file`` (path), ``__line`` and
    ``__file_ticker`` (from the file name). Raises SourceError when no file is usable.
    """
    files = list_ticker_files(folder)
    if not files:
        raise SourceError(f"files source: the prices folder {folder} holds no files")
    groups: dict[str, list[Path]] = {}
    bad: list[dict[str, Any]] = []
    for path in files:
        header, problem = _header(path)
        if problem is None:
            columns = [c.strip().strip('"') for c in header.split(",")]
            missing = required(columns)
            if missing:
                problem = f"missing columns: {missing}; header is {columns[:20]}"
        if problem is not None:
            rule = problem.split(":")[0].split(" (")[0]
            bad.append({"dataset": "prices", "file": str(path), "rule": rule, "reason": problem})
            continue
        groups.setdefault(header, []).append(path)
    parts = []
    for members in groups.values():
        frame, failed = _scan_group(members)
        parts.extend(frame)
        bad.extend(failed)
    if not parts:
        raise SourceError(
            f"files source: none of the {len(files)} files in {folder} is usable; e.g. "
            + "; ".join(f"{Path(b['file']).name}: {b['reason']}" for b in bad[:5])
        )
    frame = pl.concat(parts, how="diagonal")
    with_rows = set(frame.get_column(_FILE).unique().to_list())
    for members in groups.values():
        bad.extend(
            {"dataset": "prices", "file": str(p), "rule": "empty file", "reason": "header only"}
            for p in members
            if str(p) not in with_rows
        )
    frame = frame.with_columns(
        (pl.int_range(pl.len()).over(_FILE) + 2).cast(pl.Int64).alias(_LINE), _ticker_expr()
    )
    return frame, rejected(bad)


def _ticker_expr() -> pl.Expr:
    """The ticker of each row from its file name, as :func:`ticker_from_file_name` (vectorised)."""
    name = pl.col(_FILE).str.replace(r"^.*[/\\]", "")
    return (
        name.str.split(".")
        .list.first()
        .str.strip_chars()
        .str.to_uppercase()
        .str.replace_all("_", "-", literal=True)
        .alias(_TICKER)
    )


def _scan_group(files: list[Path]) -> tuple[list[pl.DataFrame], list[dict[str, Any]]]:
    """One scan over files sharing a header; if it fails, file by file to name the bad ones."""
    try:
        return [_scan(files)], []
    except (pl.exceptions.PolarsError, OSError):
        pass
    frames, bad = [], []
    for path in files:
        try:
            frames.append(_scan([path]))
        except (pl.exceptions.PolarsError, OSError) as exc:
            reason = f"does not parse: {str(exc).splitlines()[0][:200]}"
            bad.append(
                {"dataset": "prices", "file": str(path), "rule": "not a CSV", "reason": reason}
            )
    return frames, bad


def parse_prices(
    text: pl.DataFrame, columns: Mapping[str, pl.Expr], date_format: str | None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Typed price rows and the rows set aside, from a text frame with ``__file``/``__line``.

    ``columns``: canonical name → expression over ``text`` (mapping resolved; ``ticker`` may be
    the file-name ticker). Returns (ticker, date, open, high, low, close, adj_close, volume) rows
    that parsed, and REJECTED_ROWS for the others (reason names the column and the value).
    """
    raw = text.select(*(_text(expr).alias(name) for name, expr in columns.items()), _FILE, _LINE)
    numbers = [c for c in PRICE_NUMBERS if c in raw.columns]
    if date_format is None:  # ISO; a timestamp keeps its date
        date = pl.col("date").str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
    else:
        date = pl.col("date").str.to_date(date_format, strict=False)
    parsed = raw.with_columns(
        date.alias("_date"),
        *(pl.col(c).cast(pl.Float64, strict=False).alias(f"_{c}") for c in numbers),
    )
    parsed = _fallback_dates(parsed, date_format)
    # One cheap null test per column finds the bad rows; reasons are spelled out for those only.
    bad = pl.col("_date").is_null() | pl.col("ticker").is_null() | pl.col("_close").is_null()
    for c in numbers:
        bad = bad | (pl.col(f"_{c}").is_null() & pl.col(c).is_not_null())
    parsed = parsed.with_columns(_bad=bad)
    checks = _row_checks(raw.columns, columns)
    rejects = parsed.filter(pl.col("_bad"))
    reason = pl.concat_str(
        [pl.when(cond).then(text_expr) for cond, _, text_expr in checks],
        separator="; ",
        ignore_nulls=True,
    )
    rule = pl.coalesce([pl.when(cond).then(pl.lit(name)) for cond, name, _ in checks])
    content = pl.concat_str(
        [pl.col(c).fill_null("") for c in columns if c != "ticker"], separator=","
    )
    rejects = rejects.select(
        pl.lit("prices").alias("dataset"),
        pl.col(_FILE).alias("file"),
        pl.col(_LINE).alias("line"),
        pl.col("ticker"),
        rule.alias("rule"),
        reason.alias("reason"),
        content.alias("content"),
    )
    good = parsed.filter(~pl.col("_bad")).select(
        pl.col("ticker").str.to_uppercase(),
        pl.col("_date").alias("date"),
        *(pl.col(f"_{c}").alias(c) for c in PRICE_NUMBERS if c in raw.columns),
        pl.col(_FILE),
        pl.col(_LINE),
    )
    return good, rejects.cast(REJECTED_ROWS)


def _text(expr: pl.Expr) -> pl.Expr:
    """A column as stripped text, an empty value as null."""
    text = expr.cast(pl.String).str.strip_chars()
    return pl.when(text.str.len_bytes() > 0).then(text)


def _fallback_dates(parsed: pl.DataFrame, fmt: str | None) -> pl.DataFrame:
    """Without a ``date_format``, dates that are not ISO are tried as compact ``YYYYMMDD``
    (only when some are, so an all-ISO file pays for one parse)."""
    unparsed = parsed.select((pl.col("_date").is_null() & pl.col("date").is_not_null()).any())
    if fmt is not None or not unparsed.item():
        return parsed
    compact = pl.col("date").str.to_date("%Y%m%d", strict=False)
    return parsed.with_columns(pl.coalesce("_date", compact).alias("_date"))


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


def drop_conflicting_duplicates(prices: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One row per (ticker, date): identical duplicates kept once, conflicting ones set aside.

    ``prices``: parsed rows with ticker, date, the price numbers, ``__file`` and ``__line``.
    Two rows of one key with different values cannot both be right and nothing says which is:
    every row of that key goes to the rejected frame, with the files involved in the reason.
    Returns (rows sorted by ticker and date without ``__file``/``__line``, rejected rows).
    """
    ordered = prices.sort("ticker", "date", maintain_order=True)
    same_key_next = (pl.col("ticker") == pl.col("ticker").shift(-1)) & (
        pl.col("date") == pl.col("date").shift(-1)
    )
    same_key_prev = (pl.col("ticker") == pl.col("ticker").shift(1)) & (
        pl.col("date") == pl.col("date").shift(1)
    )
    flagged = ordered.with_columns(
        _dup=(same_key_next.fill_null(False) | same_key_prev.fill_null(False))
    )
    dups = flagged.filter(pl.col("_dup"))
    values = [c for c in PRICE_NUMBERS if c in prices.columns]
    if dups.is_empty():
        return ordered.drop(_FILE, _LINE), rejected([])
    per_key = dups.group_by("ticker", "date").agg(
        pl.struct(values).n_unique().alias("_versions"),
        pl.col(_FILE).unique().sort().alias("_files"),
    )
    conflicts = per_key.filter(pl.col("_versions") > 1)
    conflicting = dups.join(conflicts, on=["ticker", "date"], how="inner")
    names = pl.col("_files").list.eval(pl.element().str.replace(r"^.*[/\\]", ""))
    rejects = conflicting.select(
        pl.lit("prices").alias("dataset"),
        pl.col(_FILE).alias("file"),
        pl.col(_LINE).alias("line"),
        pl.col("ticker"),
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
    keep = flagged.join(
        conflicts.select("ticker", "date"), on=["ticker", "date"], how="anti", maintain_order="left"
    )
    # identical duplicates: keep the first of each run of one key
    first_of_key = ~(
        (pl.col("ticker") == pl.col("ticker").shift(1))
        & (pl.col("date") == pl.col("date").shift(1))
    ).fill_null(False)
    keep = keep.filter(first_of_key).drop("_dup", _FILE, _LINE)
    return keep, rejects

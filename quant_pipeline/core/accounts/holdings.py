"""Read a person's holdings file (CSV) into a checked frame, or say exactly what is wrong with it.

The file (comma-separated, UTF-8, an Excel byte-order mark is fine) has a header row and one row
per position::

    ticker,shares,amount_invested
    AAPL,10,1500
    msft,2.5,
    BRK-B,1.25,400.00

Header names are matched case-insensitively after trimming, with spaces and hyphens read as
underscores. Accepted names:

* ticker: ``ticker`` or ``symbol`` (required)
* shares: ``shares``, ``quantity`` or ``qty`` (required; fractional allowed)
* cost basis: ``cost_basis``, ``amount_invested`` or ``invested`` (optional; total dollars
  invested in the position, not per share)

Other columns are ignored. Blank lines are skipped. Numbers are ASCII decimals, optionally
signed, with an optional fraction and exponent (``10``, ``2.5``, ``.5``, ``1e3``) or thousands
separators in groups of three (``1,234.5``); a cost basis may start with ``$``. Anything else
(``1_000``, full-width or Arabic-Indic digits, ``inf``, ``nan``) is not a number.

Bounds: the file is a regular file (not a FIFO, a device such as ``/dev/zero`` or a directory) of
at most ``MAX_FILE_BYTES`` (1 MB, about 25,000 positions); shares at most ``MAX_SHARES`` (1e11, more
than any company has issued) and a cost basis at most ``MAX_AMOUNT`` ($1e12) per position.

Every problem is collected before raising, so one :class:`HoldingsError` names every offending row
with its line number in the file, the value and the rule it breaks; its message lists the first
``MAX_LISTED_PROBLEMS`` (50) and counts the rest.
"""

from __future__ import annotations

import csv
import io
import math
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

HOLDINGS_SCHEMA: dict[str, pl.DataType] = {
    "ticker": pl.String,
    "shares": pl.Float64,
    "cost_basis": pl.Float64,
}

COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "ticker": ("ticker", "symbol"),
    "shares": ("shares", "quantity", "qty"),
    "cost_basis": ("cost_basis", "amount_invested", "invested"),
}
REQUIRED_COLUMNS: tuple[str, ...] = ("ticker", "shares")

# ASCII only: \d would also match full-width and Arabic-Indic digits, which float() accepts.
_THOUSANDS = re.compile(r"^[+-]?[0-9]{1,3}(,[0-9]{3})+(\.[0-9]*)?$")
_DECIMAL = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$")

MAX_FILE_BYTES = 1_000_000
MAX_SHARES = 1e11
MAX_AMOUNT = 1e12
MAX_LISTED_PROBLEMS = 50


@dataclass(frozen=True)
class HoldingsProblem:
    """One broken rule: ``line`` is the 1-based line in the file (0 when about the whole file)."""

    line: int
    column: str
    value: str
    rule: str

    def __str__(self) -> str:
        if not self.line:
            return f"the file {self.rule}"
        if self.column:
            return f"line {self.line}: {self.column} {self.value!r} {self.rule}"
        return f"line {self.line}: {self.value!r} {self.rule}"


class HoldingsError(ValueError):
    """A holdings file breaks one or more rules. ``problems`` lists each one; nothing was read."""

    def __init__(self, name: str, problems: list[HoldingsProblem]):
        self.name = name
        self.problems = problems
        rows = sorted({p.line for p in problems if p.line})
        head = f"holdings file {name!r} is not usable"
        if rows:
            head += f": {len(rows)} bad row{'s' if len(rows) != 1 else ''}"
        listed = [f"  {p}" for p in problems[:MAX_LISTED_PROBLEMS]]
        if len(problems) > MAX_LISTED_PROBLEMS:
            listed.append(f"  ... and {len(problems) - MAX_LISTED_PROBLEMS} more problems")
        super().__init__(head + "\n" + "\n".join(listed))


def parse_holdings(
    source: str | Path | bytes,
    known_tickers: Iterable[str] | None = None,
    name: str | None = None,
) -> pl.DataFrame:
    """Parse a holdings CSV into ``ticker (String), shares (Float64), cost_basis (Float64)``.

    ``source`` is a path (``Path``, or a ``str`` without a line break), the file's bytes, or the
    CSV text itself (a ``str`` containing a line break). ``name`` is how errors refer to the file
    (default: the path, or ``<holdings>``). ``known_tickers``, when given, is the set of tickers
    the pipeline can price; any other ticker is an error.

    Tickers are trimmed and upper-cased; rows keep the file's order; ``cost_basis`` is null when
    the column is absent or the cell is blank. Raises :class:`HoldingsError` listing every row
    that has a blank or unknown ticker, missing / non-numeric / negative / non-finite shares, a
    non-numeric or negative cost basis, a duplicated ticker (every line it appears on), or more
    fields than the header; also for an empty file, a file without data rows and missing or
    ambiguous columns. No dates are involved.
    """
    text, label = _read(source, name)
    problems: list[HoldingsProblem] = []

    rows = _records(text)
    if not rows:
        raise HoldingsError(label, [HoldingsProblem(0, "", "", "is empty (no header, no rows)")])
    header_line, header = rows[0]
    columns = _map_columns(header, problems)
    if problems:
        raise HoldingsError(label, problems)
    data = rows[1:]
    if not data:
        raise HoldingsError(label, [HoldingsProblem(0, "", "", "has a header but no holding rows")])

    known = None if known_tickers is None else {t.strip().upper() for t in known_tickers}
    tickers: list[str] = []
    shares: list[float | None] = []
    costs: list[float | None] = []
    lines: list[int] = []
    for line, fields in data:
        if len(fields) > len(header) and any(f.strip() for f in fields[len(header) :]):
            problems.append(
                HoldingsProblem(
                    line,
                    "",
                    ",".join(fields),
                    f"has {len(fields)} fields but the header has {len(header)}",
                )
            )

        def cell(col: str, fields: list[str] = fields) -> str:
            idx = columns.get(col)
            return fields[idx].strip() if idx is not None and idx < len(fields) else ""

        raw_ticker = cell("ticker")
        ticker = raw_ticker.upper()
        if not ticker:
            problems.append(HoldingsProblem(line, "ticker", raw_ticker, "is blank"))
        elif known is not None and ticker not in known:
            problems.append(HoldingsProblem(line, "ticker", raw_ticker, "is not a known ticker"))

        raw_shares = cell("shares")
        qty = _number(raw_shares)
        if not raw_shares:
            problems.append(HoldingsProblem(line, "shares", raw_shares, "is blank"))
        elif qty is None:
            problems.append(HoldingsProblem(line, "shares", raw_shares, "is not a number"))
        elif not math.isfinite(qty):
            problems.append(HoldingsProblem(line, "shares", raw_shares, "is not finite"))
        elif qty > MAX_SHARES:
            problems.append(
                HoldingsProblem(line, "shares", raw_shares, f"is more than {MAX_SHARES:g} shares")
            )
        elif qty < 0:
            problems.append(
                HoldingsProblem(
                    line, "shares", raw_shares, "is negative (short positions are not supported)"
                )
            )

        raw_cost = cell("cost_basis")
        cost = _number(raw_cost.removeprefix("$")) if raw_cost else None
        if raw_cost and (cost is None or not math.isfinite(cost)):
            problems.append(HoldingsProblem(line, "cost_basis", raw_cost, "is not a number"))
        elif cost is not None and cost < 0:
            problems.append(HoldingsProblem(line, "cost_basis", raw_cost, "is negative"))
        elif cost is not None and cost > MAX_AMOUNT:
            problems.append(
                HoldingsProblem(line, "cost_basis", raw_cost, f"is more than ${MAX_AMOUNT:g}")
            )

        tickers.append(ticker)
        shares.append(qty)
        costs.append(cost)
        lines.append(line)

    frame = pl.DataFrame(
        {"line": lines, "ticker": tickers, "shares": shares, "cost_basis": costs},
        schema={"line": pl.Int64, **HOLDINGS_SCHEMA},
    )
    dupes = (
        frame.filter(pl.col("ticker") != "")
        .filter(pl.len().over("ticker") > 1)
        .group_by("ticker", maintain_order=True)
        .agg(pl.col("line"))
    )
    for ticker, dup_lines in dupes.iter_rows():
        listed = ", ".join(str(n) for n in dup_lines)
        for n in dup_lines:
            problems.append(
                HoldingsProblem(n, "ticker", ticker, f"appears more than once (lines {listed})")
            )

    if problems:
        problems.sort(key=lambda p: p.line)
        raise HoldingsError(label, problems)
    return frame.drop("line")


def _read(source: str | Path | bytes, name: str | None) -> tuple[str, str]:
    if isinstance(source, bytes):
        raw, label = source, name or "<holdings>"
    elif isinstance(source, str) and ("\n" in source or "\r" in source):
        raw, label = source.encode("utf-8"), name or "<holdings>"
    else:
        path = Path(source)
        label = name or str(path)
        raw = _read_bounded(path, label)
    if len(raw) > MAX_FILE_BYTES:
        raise HoldingsError(label, [_too_large()])
    try:
        return raw.decode("utf-8-sig"), label
    except UnicodeDecodeError as exc:
        raise HoldingsError(
            label,
            [HoldingsProblem(0, "", "", f"is not UTF-8 text (byte {exc.start}); save it as CSV")],
        ) from exc


def _too_large() -> HoldingsProblem:
    return HoldingsProblem(
        0, "", "", f"is larger than {MAX_FILE_BYTES:,} bytes (the limit of a holdings file)"
    )


def _read_bounded(path: Path, label: str) -> bytes:
    """The bytes of a regular file of at most MAX_FILE_BYTES; a FIFO, a device or a directory
    is refused before it is opened (reading one could block or never end)."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device or directory"
            raise HoldingsError(label, [HoldingsProblem(0, "", "", f"is {kind}, not a file")])
        if info.st_size > MAX_FILE_BYTES:
            raise HoldingsError(label, [_too_large()])
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)  # a file growing while read stays bounded
    except OSError as exc:
        raise HoldingsError(
            label, [HoldingsProblem(0, "", "", f"cannot be read: {exc.strerror or exc}")]
        ) from exc
    return raw


def _records(text: str) -> list[tuple[int, list[str]]]:
    """Non-blank CSV records with the file line each one starts on."""
    reader = csv.reader(io.StringIO(text))
    out: list[tuple[int, list[str]]] = []
    start = 1
    for fields in reader:
        if any(f.strip() for f in fields):
            out.append((start, fields))
        start = reader.line_num + 1
    return out


def _normalise(header: str) -> str:
    return re.sub(r"[\s\-]+", "_", header.strip().lower())


def _map_columns(header: list[str], problems: list[HoldingsProblem]) -> dict[str, int]:
    names = [_normalise(h) for h in header]
    columns: dict[str, int] = {}
    for canonical, aliases in COLUMN_ALIASES.items():
        found = [i for i, n in enumerate(names) if n in aliases]
        if len(found) > 1:
            problems.append(
                HoldingsProblem(
                    0,
                    "",
                    "",
                    f"has {len(found)} columns meaning {canonical} "
                    f"({', '.join(header[i].strip() for i in found)}); keep one",
                )
            )
        elif found:
            columns[canonical] = found[0]
    ambiguous = {c for c, aliases in COLUMN_ALIASES.items() if sum(n in aliases for n in names) > 1}
    missing = [c for c in REQUIRED_COLUMNS if c not in columns and c not in ambiguous]
    for col in missing:
        problems.append(
            HoldingsProblem(
                0,
                "",
                "",
                f"has no {col} column (accepted names: {', '.join(COLUMN_ALIASES[col])}; "
                f"header is {', '.join(h.strip() for h in header)})",
            )
        )
    return columns


def _number(raw: str) -> float | None:
    """The value of an ASCII decimal (or thousands-separated) number; None for anything else.
    ``inf``/``nan`` (any case) give a non-finite float so they can be named as such."""
    text = raw.strip()
    if _THOUSANDS.match(text):
        text = text.replace(",", "")
    elif text.lower().lstrip("+-") in ("inf", "infinity", "nan"):
        return float(text)
    elif not _DECIMAL.match(text):
        return None
    return float(text)

"""Read a person's holdings file (CSV) into a checked frame, or say exactly what is wrong with it.

The file (comma-separated, UTF-8, an Excel byte-order mark is fine) has a header row and one row
per position::

    ticker,shares,amount_invested
    AAPL,10,1500
    msft,2.5,
    BRK-B,1.25,400.00

Header names are matched case-insensitively after trimming, with spaces and hyphens read as
underscores. Accepted names:

* ticker: ``ticker`` or ``symbol`` (required unless a name column is given)
* name: ``stock_name``, ``name``, ``company``, ``company_name`` or ``security``: the company
  name, resolved to a ticker through curated.securities (``securities`` argument; case,
  punctuation and Inc./Corp./Ltd. insensitive, see :mod:`.security_names`); used only when the
  file has no ticker column. An unknown or ambiguous name is an error listing the candidates.
* shares: ``shares``, ``quantity``, ``qty`` or ``number_of_shares`` (required; fractional allowed)
* cost basis: ``cost_basis``, ``amount_invested``, ``invested`` or ``dollar_amount_invested``
  (optional; total dollars invested in the position, not per share)

So the spreadsheet layout ``Stock Name,Number of Shares,Dollar amount invested`` is understood.

Other columns are ignored. Blank lines are skipped. Numbers may use thousands separators
(``1,234.5``) and a cost basis may start with ``$``.

Every problem is collected before raising, so one :class:`HoldingsError` names every offending row
with its line number in the file, the value and the rule it breaks.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from quant_pipeline.core.accounts.security_names import resolve_names

HOLDINGS_SCHEMA: dict[str, pl.DataType] = {
    "ticker": pl.String,
    "shares": pl.Float64,
    "cost_basis": pl.Float64,
}

COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "ticker": ("ticker", "symbol"),
    "name": ("stock_name", "name", "company", "company_name", "security"),
    "shares": ("shares", "quantity", "qty", "number_of_shares"),
    "cost_basis": ("cost_basis", "amount_invested", "invested", "dollar_amount_invested"),
}
REQUIRED_COLUMNS: tuple[str, ...] = ("ticker", "shares")

_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$")


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
        super().__init__(head + "\n" + "\n".join(f"  {p}" for p in problems))


def parse_holdings(
    source: str | Path | bytes,
    known_tickers: Iterable[str] | None = None,
    name: str | None = None,
    securities: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Parse a holdings CSV into ``ticker (String), shares (Float64), cost_basis (Float64)``.

    ``source`` is a path (``Path``, or a ``str`` without a line break), the file's bytes, or the
    CSV text itself (a ``str`` containing a line break). ``name`` is how errors refer to the file
    (default: the path, or ``<holdings>``). ``known_tickers``, when given, is the set of tickers
    the pipeline can price; any other ticker is an error. ``securities`` (ticker, name:
    curated.securities) resolves a name column when the file has no ticker column.

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
    by_name = _tickers_by_name(columns, data, securities, label)
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
        if by_name is not None:
            raw_ticker, why = by_name.get(cell("name"), ("", "is blank"))
            if why is not None:
                problems.append(HoldingsProblem(line, "name", cell("name"), why))
        ticker = raw_ticker.upper()
        if not ticker:
            if by_name is None:  # else the name's problem is already listed
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
        return source.removeprefix("\ufeff"), name or "<holdings>"
    else:
        path = Path(source)
        label = name or str(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise HoldingsError(
                label, [HoldingsProblem(0, "", "", f"cannot be read: {exc.strerror or exc}")]
            ) from exc
    try:
        return raw.decode("utf-8-sig"), label
    except UnicodeDecodeError as exc:
        raise HoldingsError(
            label,
            [HoldingsProblem(0, "", "", f"is not UTF-8 text (byte {exc.start}); save it as CSV")],
        ) from exc


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
    if "ticker" in missing and "name" in columns:
        missing.remove("ticker")  # positions identified by company name
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


def _tickers_by_name(
    columns: dict[str, int],
    data: list[tuple[int, list[str]]],
    securities: pl.DataFrame | None,
    label: str,
) -> dict[str, tuple[str, str | None]] | None:
    """name → (ticker, problem) for a file with a name column and no ticker column, else None."""
    if "ticker" in columns or "name" not in columns:
        return None
    if securities is None:
        rule = (
            "has no ticker column (accepted names: ticker, symbol; a company name column such "
            "as Stock Name is resolved only against curated.securities)"
        )
        raise HoldingsError(label, [HoldingsProblem(0, "", "", rule)])
    if securities.is_empty():
        rule = "names positions by company name, but no securities (curated.securities) are loaded"
        raise HoldingsError(label, [HoldingsProblem(0, "", "", rule)])
    idx = columns["name"]
    names = sorted({f[idx].strip() for _, f in data if idx < len(f) and f[idx].strip()})
    return {m.name: (m.ticker or "", m.problem) for m in resolve_names(names, securities)}


def _number(raw: str) -> float | None:
    text = raw.strip()
    if _THOUSANDS.match(text):
        text = text.replace(",", "")
    try:
        return float(text)
    except ValueError:
        return None

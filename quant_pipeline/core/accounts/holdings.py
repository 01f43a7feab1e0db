"""Parse a person's holdings CSV (its text) into a checked frame, or say exactly what is wrong.

Pure: the caller reads the file (:func:`quant_pipeline.app.holdings_file.read_holdings` reads a
path and calls :func:`parse_holdings`). The file (comma-separated, UTF-8, an Excel byte-order
mark is fine) has a header row and one row per position::

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

Other columns are ignored. Blank lines are skipped. Numbers are ASCII decimals, optionally
signed, with an optional fraction and exponent (``10``, ``2.5``, ``.5``, ``1e3``) or thousands
separators in groups of three (``1,234.5``); a cost basis may start with ``$``. Anything else
(``1_000``, full-width or Arabic-Indic digits, ``0x10``) is not a number.

Bounds: a file of at most ``MAX_FILE_BYTES`` (1 MB, about 25,000 positions; the reader in
``app/holdings_file.py`` also refuses FIFOs and devices before opening them); shares at most
``MAX_SHARES`` (1e11, more than any company has issued) and a cost basis at most ``MAX_AMOUNT``
($1e12) per position.

Every problem is collected before raising, so one :class:`HoldingsError` names every offending row
with its line number in the file, the value and the rule it breaks; its message lists the first
``MAX_LISTED_PROBLEMS`` (50) and counts the rest.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

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
    content: str | bytes,
    known_tickers: Iterable[str] | None = None,
    name: str = "<holdings>",
    securities: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Parse a holdings CSV into ``ticker (String), shares (Float64), cost_basis (Float64)``.

    ``content`` is the file's bytes (decoded as UTF-8, a byte-order mark dropped) or its text.
    ``name`` is how errors refer to the file (the caller passes the path). ``known_tickers``,
    when given, is the set of tickers the pipeline can price; any other ticker is an error.
    ``securities`` (ticker, name: curated.securities) resolves a name column when the file has
    no ticker column.

    Tickers are trimmed and upper-cased; rows keep the file's order; ``cost_basis`` is null when
    the column is absent or the cell is blank. Raises :class:`HoldingsError` listing every row
    that has a blank or unknown ticker, missing / non-numeric / negative / non-finite shares, a
    non-numeric or negative cost basis, a duplicated ticker (every line it appears on), or more
    fields than the header; also for an empty file, a file without data rows and missing or
    ambiguous columns. No dates are involved.
    """
    text = _decode(content, name)
    header, columns, data = _header_columns_and_rows(text, name)
    known = None if known_tickers is None else {t.strip().upper() for t in known_tickers}
    problems: list[HoldingsProblem] = []
    if "ticker" not in columns:  # positions named by company: their tickers go in its place
        columns, data, problems = _resolve_name_column(columns, data, securities, name)
    named = {p.line for p in problems}
    rows = []
    for line, fields in data:
        row, row_problems = _parse_row(line, fields, header, columns, known)
        rows.append(row)
        # an unresolved name already says why the ticker is blank
        problems += [p for p in row_problems if not (p.line in named and p.column == "ticker")]
    frame = pl.DataFrame(rows, schema={"line": pl.Int64, **HOLDINGS_SCHEMA}, orient="row")
    problems += _duplicate_problems(frame)
    if problems:
        problems.sort(key=lambda p: p.line)
        raise HoldingsError(name, problems)
    return frame.drop("line")


def _decode(content: str | bytes, name: str) -> str:
    """The file's text: bytes decoded as UTF-8 (``utf-8-sig``), a text's byte-order mark dropped."""
    size = len(content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content)
    if size > MAX_FILE_BYTES:
        raise HoldingsError(name, [too_large()])
    if isinstance(content, str):
        return content.removeprefix("\ufeff")
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HoldingsError(
            name,
            [HoldingsProblem(0, "", "", f"is not UTF-8 text (byte {exc.start}); save it as CSV")],
        ) from exc


def too_large() -> HoldingsProblem:
    """The problem of a file over ``MAX_FILE_BYTES``."""
    return HoldingsProblem(
        0, "", "", f"is larger than {MAX_FILE_BYTES:,} bytes (the limit of a holdings file)"
    )


def _header_columns_and_rows(
    text: str, name: str
) -> tuple[list[str], dict[str, int], list[tuple[int, list[str]]]]:
    """The header, the column index of each canonical column, and the data records.

    Raises :class:`HoldingsError` for an empty file, missing or ambiguous columns, or no rows.
    """
    rows = _records(text)
    if not rows:
        raise HoldingsError(name, [HoldingsProblem(0, "", "", "is empty (no header, no rows)")])
    _, header = rows[0]
    problems: list[HoldingsProblem] = []
    columns = _map_columns(header, problems)
    if problems:
        raise HoldingsError(name, problems)
    if len(rows) == 1:
        raise HoldingsError(name, [HoldingsProblem(0, "", "", "has a header but no holding rows")])
    return header, columns, rows[1:]


def _parse_row(
    line: int,
    fields: list[str],
    header: list[str],
    columns: dict[str, int],
    known: set[str] | None,
) -> tuple[tuple[int, str, float | None, float | None], list[HoldingsProblem]]:
    """One data record as ``(line, ticker, shares, cost_basis)`` and the rules it breaks."""
    problems: list[HoldingsProblem] = []
    if len(fields) > len(header) and any(f.strip() for f in fields[len(header) :]):
        problems.append(
            HoldingsProblem(
                line,
                "",
                ",".join(fields),
                f"has {len(fields)} fields but the header has {len(header)}",
            )
        )

    def cell(col: str) -> str:
        idx = columns.get(col)
        return fields[idx].strip() if idx is not None and idx < len(fields) else ""

    ticker = _ticker(line, cell("ticker"), known, problems)
    shares = _shares(line, cell("shares"), problems)
    cost = _cost_basis(line, cell("cost_basis"), problems)
    return (line, ticker, shares, cost), problems


def _ticker(line: int, raw: str, known: set[str] | None, problems: list[HoldingsProblem]) -> str:
    """The upper-cased ticker; blank or (when ``known`` is given) unknown tickers are problems."""
    ticker = raw.upper()
    if not ticker:
        problems.append(HoldingsProblem(line, "ticker", raw, "is blank"))
    elif known is not None and ticker not in known:
        problems.append(HoldingsProblem(line, "ticker", raw, "is not a known ticker"))
    return ticker


def _shares(line: int, raw: str, problems: list[HoldingsProblem]) -> float | None:
    """The share count; blank, non-numeric, non-finite or negative counts are problems."""
    qty = _number(raw)
    if not raw:
        problems.append(HoldingsProblem(line, "shares", raw, "is blank"))
    elif qty is None:
        problems.append(HoldingsProblem(line, "shares", raw, "is not a number"))
    elif not math.isfinite(qty):
        problems.append(HoldingsProblem(line, "shares", raw, "is not finite"))
    elif qty > MAX_SHARES:
        problems.append(HoldingsProblem(line, "shares", raw, f"is more than {MAX_SHARES:g} shares"))
    elif qty < 0:
        problems.append(
            HoldingsProblem(line, "shares", raw, "is negative (short positions are not supported)")
        )
    return qty


def _cost_basis(line: int, raw: str, problems: list[HoldingsProblem]) -> float | None:
    """The cost basis (null when blank, ``$`` allowed); non-numeric or negative is a problem."""
    cost = _number(raw.removeprefix("$")) if raw else None
    if raw and (cost is None or not math.isfinite(cost)):
        problems.append(HoldingsProblem(line, "cost_basis", raw, "is not a number"))
    elif cost is not None and cost < 0:
        problems.append(HoldingsProblem(line, "cost_basis", raw, "is negative"))
    elif cost is not None and cost > MAX_AMOUNT:
        problems.append(HoldingsProblem(line, "cost_basis", raw, f"is more than ${MAX_AMOUNT:g}"))
    return cost


def _duplicate_problems(frame: pl.DataFrame) -> list[HoldingsProblem]:
    """One problem per line of every non-blank ticker that appears on more than one line."""
    dupes = (
        frame.filter(pl.col("ticker") != "")
        .filter(pl.len().over("ticker") > 1)
        .group_by("ticker", maintain_order=True)
        .agg(pl.col("line"))
    )
    problems = []
    for ticker, dup_lines in dupes.iter_rows():
        listed = ", ".join(str(n) for n in dup_lines)
        problems += [
            HoldingsProblem(n, "ticker", ticker, f"appears more than once (lines {listed})")
            for n in dup_lines
        ]
    return problems


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


def _resolve_name_column(
    columns: dict[str, int],
    data: list[tuple[int, list[str]]],
    securities: pl.DataFrame | None,
    label: str,
) -> tuple[dict[str, int], list[tuple[int, list[str]]], list[HoldingsProblem]]:
    """For a file with a name column and no ticker column: the records with each name replaced
    by its ticker (blank when unresolved), the name column read as the ticker column, and one
    problem per row whose name is unknown or ambiguous (with the candidates)."""
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

    def cell(fields: list[str]) -> str:
        return fields[idx].strip() if idx < len(fields) else ""

    names = sorted({cell(f) for _, f in data if cell(f)})
    matches = {m.name: m for m in resolve_names(names, securities)}
    problems, records = [], []
    for line, fields in data:
        match = matches.get(cell(fields))
        if match is None or match.ticker is None:
            why = match.problem if match is not None else "is blank"
            problems.append(HoldingsProblem(line, "name", cell(fields), why or ""))
        ticker = match.ticker if match is not None and match.ticker else ""
        records.append((line, [*fields[:idx], ticker, *fields[idx + 1 :]]))
    return {**columns, "ticker": idx}, records, problems


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

"""Company names to tickers, for holdings files that list ``Stock Name`` instead of a ticker.

Names are compared after :func:`normalise_name`: lower case, ``&`` read as ``and``, punctuation
removed, a leading "The" and legal-form words (Inc., Incorporated, Corp., Corporation, Co.,
Company, Ltd., Limited, PLC, LLC, L.P., N.V., S.A., AG, SE) dropped. So "Apple Inc.", "APPLE INC"
and "apple" are one name, while "Alphabet Inc Class A" and "Alphabet Inc Class C" stay two.

A name resolves when exactly one security has that normalised name. Otherwise it is an error
that lists the candidates: every security with that exact name (ambiguous), else those whose
normalised name starts with the given words (e.g. "Alphabet" → GOOGL, GOOG), else those sharing
a word with it. Pure: a names frame (curated.securities: ticker, name) in, tickers out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

LEGAL_FORMS = frozenset(
    {
        "inc",
        "incorporated",
        "corp",
        "corporation",
        "co",
        "company",
        "ltd",
        "limited",
        "plc",
        "llc",
        "lp",
        "nv",
        "sa",
        "ag",
        "se",
    }
)
MAX_CANDIDATES = 5


def normalise_name(name: str) -> str:
    """``"The Coca-Cola Company"`` → ``"coca cola"``; ``"AT&T Inc."`` → ``"at and t"``."""
    text = name.lower().replace("&", " and ")
    # "L.P." and "N.V.": drop dots inside abbreviations first, then every other punctuation mark
    text = re.sub(r"(?<=\b\w)\.(?=\w\b)", "", text)
    words = re.sub(r"[^\w\s]|_", " ", text).split()
    if words and words[0] == "the":
        words = words[1:]
    return " ".join(w for w in words if w not in LEGAL_FORMS)


@dataclass(frozen=True)
class NameMatch:
    """The ticker a name resolved to, or None with the rule broken and the candidates."""

    name: str
    ticker: str | None
    problem: str | None = None


def _describe(rows: pl.DataFrame) -> str:
    listed = [f"{t} ({n})" for t, n in rows.select("ticker", "name").head(MAX_CANDIDATES).rows()]
    more = f" and {rows.height - MAX_CANDIDATES} more" if rows.height > MAX_CANDIDATES else ""
    return ", ".join(listed) + more


def resolve_names(names: Sequence[str], securities: pl.DataFrame) -> list[NameMatch]:
    """One :class:`NameMatch` per name, in order.

    ``securities``: ticker, name (curated.securities; rows without a name are ignored).
    """
    table = (
        securities.select("ticker", "name")
        .filter(pl.col("name").is_not_null())
        .with_columns(key=pl.col("name").map_elements(normalise_name, return_dtype=pl.String))
        .sort("ticker")
    )
    out = []
    for name in names:
        key = normalise_name(name)
        exact = table.filter(pl.col("key") == key)
        if key and exact.height == 1:
            out.append(NameMatch(name, exact["ticker"][0]))
            continue
        if key and exact.height > 1:
            problem = f"is ambiguous: {exact.height} securities have that name: {_describe(exact)}"
            out.append(NameMatch(name, None, problem))
            continue
        out.append(NameMatch(name, None, _unknown(key, table)))
    return out


def _unknown(key: str, table: pl.DataFrame) -> str:
    if not key:
        return "is not a company name"
    prefix = table.filter((pl.col("key") == key) | pl.col("key").str.starts_with(key + " "))
    if prefix.height > 1:
        return f"is ambiguous: {prefix.height} companies match: {_describe(prefix)}"
    if prefix.height == 1:
        return f"is not a known company name; did you mean {_describe(prefix)}?"
    words = set(key.split())
    shared = table.filter(
        pl.col("key").str.split(" ").list.eval(pl.element().is_in(list(words))).list.any()
    )
    if shared.height:
        return f"is not a known company name; candidates: {_describe(shared)}"
    return "is not a known company name (no security in curated.securities shares a word with it)"

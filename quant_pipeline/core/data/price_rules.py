"""The rules a price row must pass, plausibility checks, and the guard that keeps a stored row
from being made worse by a re-fetch.

Pure polars (and numpy for the spike scan). Three things live here because the curated layer and
the ingestion guard must apply exactly the same rules:

- :func:`row_rules`: rules one row fails on its own (null, zero or negative close, non-positive
  adj_close, high < low, negative volume, a non-finite value).
- :func:`plausibility_reasons`: rules a row fails in the context of its ticker's series: a date
  after the run's as-of date, or a one-day spike that reverses (:class:`SpikeRule`).
- :func:`guard_replacements`: which incoming rows may replace stored rows (raw.prices), which are
  refused (they fail a rule, or are null where the stored row has a value, while the stored row
  passes), and which are restatements (a valid new value for a stored key).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import NamedTuple

import numpy as np
import polars as pl

from quant_pipeline.core.data.schema import PRICE_VALUE_COLUMNS

PRICE_VALUES: tuple[str, ...] = PRICE_VALUE_COLUMNS
# Values of a re-fetched row compared with the stored one (restatements) and checked for nulls.
_COMPARED = PRICE_VALUES
# Relative difference above which a re-fetched value counts as restated.
RESTATED_TOLERANCE = 1e-6
_KEY = ["ticker", "date", "source"]


@dataclass(frozen=True)
class SpikeRule:
    """A spike: a row whose price moved by more than a factor ``1 + threshold`` (up or down)
    from the previous row of its ticker, and where one of the next ``reversal_rows`` rows is
    back within a factor ``sqrt(1 + threshold)`` of the price before the move (half the move's
    threshold, in log terms). The rows from the move to the one before the reversal are
    quarantined.

    Defaults: ``threshold=3.0`` (a close more than 4x or less than 1/4 of the previous close;
    back means within 2x of it) and ``reversal_rows=5`` (trading days). A split of 4:1 or more
    moves as-traded prices past the factor but does not come back, so it is not a spike (a
    4:1 split followed by a 2x rally within 5 days would be)."""

    threshold: float = 3.0
    reversal_rows: int = 5

    def __post_init__(self) -> None:
        if not self.threshold > 0 or not math.isfinite(self.threshold):
            raise ValueError(f"SpikeRule.threshold must be a positive number, got {self.threshold}")
        if self.reversal_rows < 1:
            raise ValueError(f"SpikeRule.reversal_rows must be >= 1, got {self.reversal_rows}")


def row_rules() -> list[tuple[pl.Expr, str]]:
    """(condition, reason) pairs a raw.prices row fails on its own; a null condition passes."""
    return [
        (pl.col("close").is_null(), "close is null"),
        (pl.col("close") <= 0, "close <= 0"),
        (pl.col("adj_close") <= 0, "adj_close <= 0"),
        (pl.col("high") < pl.col("low"), "high < low"),
        (pl.col("volume") < 0, "volume < 0"),
        *(
            (pl.col(c).is_nan() | pl.col(c).is_infinite(), f"{c} is not finite")
            for c in PRICE_VALUES
        ),
    ]


def fails_row_rules() -> pl.Expr:
    """True where a row fails one of :func:`row_rules`."""
    return pl.any_horizontal(cond.fill_null(False) for cond, _ in row_rules())


def join_reasons(parts: list[pl.Expr]) -> pl.Expr:
    """The non-null ``parts`` joined by '; '; null when every part is null."""
    joined = pl.concat_str(parts, separator="; ", ignore_nulls=True)
    return pl.when(joined.str.len_bytes() > 0).then(joined)


def row_reason() -> pl.Expr:
    """The broken :func:`row_rules` of a row joined by '; ' (null when it passes)."""
    return join_reasons(
        [pl.when(cond.fill_null(False)).then(pl.lit(text)) for cond, text in row_rules()]
    )


def spike_flags(tickers: pl.Series, values: pl.Series, rule: SpikeRule) -> np.ndarray:
    """Boolean per row: the row belongs to a spike of ``values`` (see :class:`SpikeRule`).

    ``tickers`` and ``values`` are aligned and sorted by (ticker, date); nulls never start or
    end a spike. Work is O(rows + candidates x reversal_rows): only rows that moved past the
    factor are scanned forward."""
    v = values.cast(pl.Float64).fill_null(float("nan")).to_numpy()
    n = len(v)
    flags = np.zeros(n, dtype=bool)
    if n < 3:
        return flags
    ids = tickers.rle_id().to_numpy()
    limit = math.log1p(rule.threshold)
    back = limit / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        move = np.abs(np.log(v[1:] / v[:-1]))
    candidates = np.flatnonzero((move > limit) & (ids[1:] == ids[:-1])) + 1
    for i in candidates:
        if flags[i - 1]:  # the move back from a spike already found
            continue
        base = v[i - 1]
        for j in range(i + 1, min(i + 1 + rule.reversal_rows, n)):
            if ids[j] != ids[i]:
                break
            if not math.isnan(v[j]) and abs(math.log(v[j] / base)) <= back:
                flags[i:j] = True
                break
    return flags


def plausibility_reasons(
    prices: pl.DataFrame, as_of: date | None, rule: SpikeRule | None
) -> pl.Series:
    """Why each row of ``prices`` is implausible (null when it is plausible), as a String Series.

    ``prices``: ticker, date, close, adj_close, sorted by (ticker, date), rows that pass
    :func:`row_rules`. Reasons: ``date after as-of <as_of>``; ``one-day spike in <column>
    (move beyond x<1 + threshold> reversed within <n> rows)``, for close and adj_close. A
    future-dated row is left out of the spike scan."""
    reasons: list[pl.Series] = []
    future = (
        prices.get_column("date") > as_of
        if as_of is not None
        else pl.repeat(False, prices.height, dtype=pl.Boolean, eager=True)
    )
    if as_of is not None and future.any():
        reasons.append(_text_where(future.to_numpy(), f"date after as-of {as_of.isoformat()}"))
    if rule is not None and prices.height:
        present = prices.filter(~future)
        index = np.flatnonzero(~future.to_numpy())
        for column in ("close", "adj_close"):
            flags = spike_flags(present["ticker"], present[column], rule)
            if not flags.any():
                continue
            full = np.zeros(prices.height, dtype=bool)
            full[index[flags]] = True
            text = (
                f"one-day spike in {column} (move beyond x{1 + rule.threshold:g} reversed "
                f"within {rule.reversal_rows} rows)"
            )
            reasons.append(_text_where(full, text))
    if not reasons:
        return pl.repeat(None, prices.height, dtype=pl.String, eager=True).alias("reason")
    frame = pl.DataFrame({f"r{i}": r for i, r in enumerate(reasons)})
    joined = frame.select(join_reasons([pl.col(c) for c in frame.columns]))
    return joined.to_series().alias("reason")


def _text_where(mask: np.ndarray, text: str) -> pl.Series:
    """``text`` where ``mask`` is True, null elsewhere."""
    return pl.select(pl.when(pl.lit(pl.Series(mask))).then(pl.lit(text))).to_series()


class GuardedPrices(NamedTuple):
    """``accepted``: incoming rows that may be written. ``refused``: incoming rows kept out
    (REFUSED_REPLACEMENT columns). ``restatements``: stored values the accepted rows change
    (PRICE_RESTATEMENT columns)."""

    accepted: pl.DataFrame
    refused: pl.DataFrame
    restatements: pl.DataFrame


REFUSED_REPLACEMENT: dict[str, pl.DataType] = {
    "ticker": pl.String,
    "date": pl.Date,
    "source": pl.String,
    "reason": pl.String,
    **{f"stored_{c}": pl.Float64 for c in _COMPARED},
    **{f"incoming_{c}": pl.Float64 for c in _COMPARED},
    "stored_ingested_at": pl.Datetime("us", "UTC"),
    "refused_at": pl.Datetime("us", "UTC"),
}
PRICE_RESTATEMENT: dict[str, pl.DataType] = {
    "ticker": pl.String,
    "date": pl.Date,
    "source": pl.String,
    "column": pl.String,
    "old_value": pl.Float64,
    "new_value": pl.Float64,
    "old_ingested_at": pl.Datetime("us", "UTC"),
    "new_ingested_at": pl.Datetime("us", "UTC"),
}


def _series_reasons(frame: pl.DataFrame, rule: SpikeRule | None) -> pl.Series:
    """Row-rule and spike reasons of a (ticker, date)-sorted price series (null: passes)."""
    bad = frame.select(fails_row_rules()).to_series()
    reason = frame.select(row_reason()).to_series()
    good = frame.filter(~bad)
    spikes = plausibility_reasons(good, None, rule)
    full = pl.repeat(None, frame.height, dtype=pl.String, eager=True)
    if good.height:
        full = full.scatter(np.flatnonzero(~bad.to_numpy()), spikes)
    return pl.select(pl.coalesce(pl.lit(reason), pl.lit(full))).to_series()


def guard_replacements(
    stored: pl.DataFrame, incoming: pl.DataFrame, rule: SpikeRule | None, refused_at: datetime
) -> GuardedPrices:
    """Keep stored price rows from being made worse by ``incoming`` rows of the same source.

    ``stored``: raw.prices rows of the tickers in ``incoming`` (their whole stored history, or
    at least everything from before the incoming window). ``incoming``: re-fetched raw.prices
    rows, one per key. An incoming row whose key is stored is refused when the stored row passes
    :func:`row_rules` and the spike rule (in the stored series) while the incoming row fails
    them in the series with the replacement applied, or is null where the stored row has a
    value. Rows for new keys are never refused here (the curated layer judges them). Accepted
    rows that change a stored value beyond ``RESTATED_TOLERANCE`` are listed as restatements,
    one row per changed column."""
    empty_refused = pl.DataFrame(schema=REFUSED_REPLACEMENT)
    empty_restated = pl.DataFrame(schema=PRICE_RESTATEMENT)
    if incoming.is_empty() or stored.is_empty():
        return GuardedPrices(incoming, empty_refused, empty_restated)
    stored = stored.filter(pl.col("ticker").is_in(incoming["ticker"].unique().implode()))
    stored = stored.sort(_KEY)
    stored_reason = _series_reasons(stored, rule)
    # The series as it would be after the write: stored rows replaced by incoming ones.
    merged = pl.concat(
        [stored.join(incoming.select(_KEY), on=_KEY, how="anti"), incoming], how="vertical"
    ).sort(_KEY)
    merged_reason = _series_reasons(merged, rule)
    cols = list(_COMPARED)
    pair = incoming.join(merged.select(_KEY).with_columns(_new_reason=merged_reason), on=_KEY).join(
        stored.select(*_KEY, *cols, "ingested_at").with_columns(_old_reason=stored_reason),
        on=_KEY,
        how="inner",
        suffix="_stored",
    )
    nulled = [
        pl.when(pl.col(c).is_null() & pl.col(f"{c}_stored").is_not_null()).then(
            pl.format(f"{c} is null where the stored row has {{}}", pl.col(f"{c}_stored"))
        )
        for c in cols
    ]
    pair = pair.with_columns(_why=join_reasons([pl.col("_new_reason"), *nulled]))
    refuse = pair.filter(pl.col("_old_reason").is_null() & pl.col("_why").is_not_null())
    refused = refuse.select(
        "ticker",
        "date",
        "source",
        reason=pl.col("_why"),
        **{f"stored_{c}": pl.col(f"{c}_stored").cast(pl.Float64) for c in cols},
        **{f"incoming_{c}": pl.col(c).cast(pl.Float64) for c in cols},
        stored_ingested_at=pl.col("ingested_at_stored"),
        refused_at=pl.lit(refused_at).cast(pl.Datetime("us", "UTC")),
    ).cast(REFUSED_REPLACEMENT)  # type: ignore[arg-type]
    accepted = incoming.join(refused.select(_KEY), on=_KEY, how="anti")
    kept = pair.join(refused.select(_KEY), on=_KEY, how="anti")
    return GuardedPrices(accepted.sort(_KEY), refused.sort(_KEY), _restatements(kept, cols))


def _restatements(pair: pl.DataFrame, cols: list[str]) -> pl.DataFrame:
    """One row per (key, column) whose accepted value differs from the stored one."""
    parts = []
    for c in cols:
        new, old = pl.col(c).cast(pl.Float64), pl.col(f"{c}_stored").cast(pl.Float64)
        scale = pl.max_horizontal(new.abs(), old.abs())
        differs = ((new - old).abs() > RESTATED_TOLERANCE * scale).fill_null(False) | (
            new.is_null() != old.is_null()
        )
        parts.append(
            pair.filter(differs).select(
                "ticker",
                "date",
                "source",
                column=pl.lit(c),
                old_value=old,
                new_value=new,
                old_ingested_at=pl.col("ingested_at_stored"),
                new_ingested_at=pl.col("ingested_at"),
            )
        )
    out = pl.concat(parts, how="vertical").cast(PRICE_RESTATEMENT)  # type: ignore[arg-type]
    return out.sort(["ticker", "date", "column"])

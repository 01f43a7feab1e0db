"""Lookahead audit: recompute stored factor values and scores from data truncated at each date.

For a sample of rebalance dates D the inputs are cut to what a person could have had on D
morning, and ``factors.values`` and ``factors.scores`` are computed again for D alone:

* prices: rows with ``date < D`` only (nothing of D or later exists), and of those only the
  rows any factor can read (:func:`price_window`: each trading ticker's last
  ``PRICE_HISTORY_ROWS`` rows), which keeps the four recomputations cheap;
* fundamentals: the versions known at D (``vintage_at`` before D began, else the first ingested
  one, see :func:`quant_pipeline.core.data.curation.fundamentals_known_at`), and only rows with
  ``available_at < D``: trailing-twelve-month sums are recomputed from those rows alone;
* membership: intervals started on or before D, with end dates after D erased (on D nobody knows
  when a member will leave).

The stored rows of D must then match the recomputation EXACTLY: the same tickers, equal values
(floats within ``FLOAT_TOLERANCE`` relative: rolling sums started from another first row, or
scores of one date summed in another order, differ in the last bits), nulls in the same places
(NaN equals NaN). Any difference means a stored number used something
that was not known on D. Securities profiles (sector, the shares fallback flagged by
``shares_from_profile``) have no history and are used as they are; adjusted closes are used as
stored, which is harmless because every factor uses them as ratios within the window before D.
Share-basis events (curated.share_basis_events) are used as stored too: they state the basis of
the stored prices (a split-adjusted price file is restated for every later split), and an
as-traded split only applies to prices dated on or after it, so nothing of D or later enters.

Pure polars; the Dagster check lives in :mod:`quant_pipeline.defs.integrity`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import polars as pl

from quant_pipeline.core.data.curation import fundamentals_known_at
from quant_pipeline.core.factors.point_in_time import FactorFunction, factor_values
from quant_pipeline.core.factors.values import LISTED_WINDOW, MAX_STALE_DAYS, PRICE_HISTORY_ROWS
from quant_pipeline.core.strategies.scoring import profile_columns, score, with_country
from quant_pipeline.core.strategies.spec import StrategySpec

DEFAULT_SAMPLE_DATES = 4
MISMATCH_SCHEMA: dict[str, pl.DataType] = {
    "table": pl.String(),
    "strategy": pl.String(),
    "rebalance_date": pl.Date(),
    "ticker": pl.String(),
    "column": pl.String(),
    "stored": pl.String(),
    "recomputed": pl.String(),
}
KEY = ["rebalance_date", "ticker"]
ROW_MISSING = "<row>"  # ``column`` of a mismatch where the whole row exists on one side only
FLOAT_TOLERANCE = 1e-12  # relative; floats closer than this are the same number computed twice


AUDITED_KEYS_SCHEMA: dict[str, pl.DataType] = {
    "table": pl.String(),
    "strategy": pl.String(),
    "rebalance_date": pl.Date(),
    "rows_compared": pl.Int64(),
    "mismatches": pl.Int64(),
}


@dataclass(frozen=True)
class AuditResult:
    """Outcome of :func:`audit_lookahead`: the dates checked, rows compared and every mismatch.

    ``audited``: one row per key compared in this audit (``AUDITED_KEYS_SCHEMA``: table
    ``factors.values`` with a null strategy, or ``factors.scores`` and the strategy; the
    rebalance date; rows compared and mismatches found), kept keys not among them."""

    dates: tuple[date, ...]
    rows_compared: int
    mismatches: pl.DataFrame
    audited: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=AUDITED_KEYS_SCHEMA))

    @property
    def passed(self) -> bool:
        return self.mismatches.is_empty()

    def message(self, limit: int = 5) -> str:
        """One line for a person: what passed, or the first ``limit`` mismatches."""
        dates = ", ".join(str(d) for d in self.dates)
        if self.passed:
            return (
                f"lookahead audit passed: {self.rows_compared} stored rows on {dates} equal a "
                "recomputation from data available before each date"
            )
        shown = []
        for row in self.mismatches.head(limit).iter_rows(named=True):
            where = f"{row['table']}"
            if row["strategy"] is not None:
                where += f" [{row['strategy']}]"
            shown.append(
                f"{where} on {row['rebalance_date']} ticker {row['ticker']} column "
                f"{row['column']}: stored {row['stored']} != recomputed {row['recomputed']}"
            )
        return (
            f"lookahead audit failed: {self.mismatches.height} value(s) differ from a "
            f"recomputation from data available before each date (checked {dates}); "
            + "; ".join(shown)
        )


def sample_dates(dates: Iterable[date], n: int = DEFAULT_SAMPLE_DATES) -> list[date]:
    """``n`` rebalance dates spread evenly from the first to the last (all when fewer).

    Deterministic: the same dates give the same sample. ``n == 1`` picks the last date.
    """
    if n < 1:
        raise ValueError(f"sample size must be >= 1, got {n}")
    ordered = sorted(set(dates))
    if len(ordered) <= n:
        return ordered
    if n == 1:
        return [ordered[-1]]
    step = (len(ordered) - 1) / (n - 1)
    return sorted({ordered[round(i * step)] for i in range(n)})


def truncate_membership(membership: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Membership intervals as known on ``as_of``: started by then; later end dates unknown."""
    return membership.filter(pl.col("start_date") <= as_of).with_columns(
        pl.when(pl.col("end_date") < as_of).then(pl.col("end_date")).alias("end_date")
    )


def compare_rows(
    stored: pl.DataFrame,
    recomputed: pl.DataFrame,
    key: Sequence[str],
    table: str,
    strategy: str | None = None,
) -> pl.DataFrame:
    """Every difference between two frames with the same columns, keyed by ``key``.

    A row present on one side only gives one mismatch with ``column = '<row>'``; otherwise one
    mismatch per differing column. Equal means both null, both NaN, ``==``, or for floats
    within ``FLOAT_TOLERANCE`` relative (the rounding of a different summation order). Output:
    ``MISMATCH_SCHEMA`` (values rendered as text), ordered by date, ticker, column.
    """
    key = list(key)
    columns = [c for c in stored.columns if c not in key]
    extra = sorted(set(recomputed.columns) ^ set(stored.columns))
    if extra:
        raise ValueError(f"{table}: stored and recomputed columns differ: {extra}")
    left = stored.with_columns(_l=pl.lit(True))
    right = recomputed.select(stored.columns).with_columns(_r=pl.lit(True))
    joined = left.join(right, on=key, how="full", coalesce=True, suffix="__re")
    out = [
        joined.filter(pl.col("_l").is_null() | pl.col("_r").is_null()).select(
            *key,
            pl.lit(ROW_MISSING).alias("column"),
            pl.when(pl.col("_l").is_null())
            .then(pl.lit("absent"))
            .otherwise(pl.lit("present"))
            .alias("stored"),
            pl.when(pl.col("_r").is_null())
            .then(pl.lit("absent"))
            .otherwise(pl.lit("present"))
            .alias("recomputed"),
        )
    ]
    both = joined.filter(pl.col("_l").is_not_null() & pl.col("_r").is_not_null())
    for name in columns:
        a, b = pl.col(name), pl.col(f"{name}__re")
        same = a.eq_missing(b)
        if stored.schema[name].is_float():
            # summing the same numbers in another order (one date vs all dates at once in a
            # group-by) moves the last bit or two; a leak moves values by far more.
            scale = pl.max_horizontal(a.abs(), b.abs(), pl.lit(1.0))
            close = ((a - b).abs() <= FLOAT_TOLERANCE * scale).fill_null(False)
            same = same | close | (a.is_nan() & b.is_nan()).fill_null(False)
        out.append(
            both.filter(~same.fill_null(False)).select(
                *key,
                pl.lit(name).alias("column"),
                a.cast(pl.String).fill_null("null").alias("stored"),
                b.cast(pl.String).fill_null("null").alias("recomputed"),
            )
        )
    return (
        pl.concat(out, how="vertical_relaxed")
        .with_columns(table=pl.lit(table), strategy=pl.lit(strategy, dtype=pl.String))
        .select([pl.col(c).cast(t) for c, t in MISMATCH_SCHEMA.items()])
        .sort("rebalance_date", "ticker", "column")
    )


def price_window(
    prices: pl.DataFrame,
    max_stale_days: int = MAX_STALE_DAYS,
    rows: int = PRICE_HISTORY_ROWS,
    before: date | None = None,
) -> pl.DataFrame:
    """The part of ``prices`` dated before ``before`` (every row when None) that the factor
    values of ``before`` can depend on.

    Every factor reads at most ``rows`` price rows per ticker, and a ticker without a price in the
    last ``max_stale_days`` + ``LISTED_WINDOW`` trading days is out of D's grid. So the frame is
    cut at one date: the earliest start of a still-trading ticker's last ``rows`` rows, and no
    later than that staleness horizon; every row from there on is kept, so the trading calendar
    after the cut is intact. The result is the same numbers as the whole history up to float
    rounding in rolling sums (they start from a different first row; within ``FLOAT_TOLERANCE``),
    and anything a factor read beyond its declared window would show up as a mismatch.
    ``before`` gives the rows of ``prices.filter(date < before)`` without copying them first
    (at 3,000 tickers that copy was the whole price table).
    """
    rows_before = prices.lazy()
    if before is not None:  # a lazy filter: each query below reads the rows in place
        rows_before = rows_before.filter(pl.col("date") < before)
    days = rows_before.select(pl.col("date").unique().sort()).collect().to_series()
    if days.is_empty():
        return prices.clear()
    horizon = days[max(0, days.len() - 1 - max_stale_days - LISTED_WINDOW)]
    starts = rows_before.group_by("ticker").agg(
        pl.col("date").max().alias("last"),
        pl.col("date").top_k(rows).min().alias("start"),
    )
    live = starts.filter(pl.col("last") >= horizon).collect()["start"]
    cut = min(live.min(), horizon) if live.len() else horizon
    return rows_before.filter(pl.col("date") >= cut).collect()


def _to_compare(
    on_d: pl.DataFrame, specs: Mapping[str, StrategySpec], passed: set, d: date
) -> list[str]:
    """The strategies with stored scores on ``d`` (``on_d``) not kept from an earlier audit;
    each must be one of ``specs``."""
    names = sorted(n for n in on_d["strategy"].unique().to_list() if (n, d) not in passed)
    for name in names:
        if name not in specs:
            raise ValueError(
                f"factors.scores holds strategy {name!r} on {d}, which is not among the "
                f"strategies given to the audit {sorted(specs)}"
            )
    return names


def _compare_scores(
    on_d: pl.DataFrame,
    values: pl.DataFrame,
    specs: Mapping[str, StrategySpec],
    names: Sequence[str],
    d: date,
) -> Iterable[tuple[pl.DataFrame, tuple]]:
    """Each of ``names``' stored scores on ``d`` (``on_d``) against scores of ``values``: the
    mismatches and the key's ``AUDITED_KEYS_SCHEMA`` row."""
    for name in names:
        mine = on_d.filter(pl.col("strategy") == name)
        again, _ = score(values, specs[name])
        diff = compare_rows(
            mine, again.select(mine.columns), ["strategy", *KEY], "factors.scores", name
        )
        yield diff, ("factors.scores", name, d, mine.height, diff.height)


def audit_lookahead(
    stored_values: pl.DataFrame,
    stored_scores: pl.DataFrame,
    prices: pl.DataFrame,
    vintages: pl.DataFrame,
    securities: pl.DataFrame,
    membership: pl.DataFrame | None,
    specs: Mapping[str, StrategySpec],
    dates: Iterable[date],
    *,
    universe: str | None = None,
    max_stale_days: int = MAX_STALE_DAYS,
    compute: FactorFunction = factor_values,
    share_basis: pl.DataFrame | None = None,
    kept_values: Iterable[date] = (),
    kept_scores: Iterable[tuple[str, date]] = (),
) -> AuditResult:
    """Recompute factors.values and factors.scores on ``dates`` from truncated inputs; compare.

    ``stored_values`` / ``stored_scores``: the stored factors.values / factors.scores (any dates;
    only ``dates`` are compared). ``prices``: curated.prices; ``vintages``:
    curated.fundamentals_vintages; ``securities``: curated.securities; ``membership``:
    curated.membership or None; ``specs``: the strategies by name (a strategy is audited on D when
    factors.scores holds rows of it on D). ``compute``, ``universe`` and ``max_stale_days``: as
    given to :func:`quant_pipeline.core.factors.point_in_time.point_in_time_factor_values` when the
    stored tables were built. Inputs are truncated per date as the module docstring says; each date
    sees only its own truncation. ``share_basis``: curated.share_basis_events when the stored
    values were built with them (handed to ``compute`` as they are).

    ``kept_values``: dates whose stored values an earlier audit found equal to the
    recomputation from the same inputs (same input digest, same code): they are not
    recomputed, and the stored values stand in for the recomputation when a strategy's scores
    on that date are compared. ``kept_scores``: (strategy, date) pairs an earlier audit passed
    on the same inputs: not compared again. A date with nothing left to compare is skipped.
    """
    extra = {} if share_basis is None else {"share_basis": share_basis}
    checked = sorted(set(dates))
    trusted, passed = set(kept_values), set(kept_scores)
    found: list[pl.DataFrame] = []
    audited: list[tuple] = []
    for d in checked:
        on_d = stored_scores.filter(pl.col("rebalance_date") == d)
        names = _to_compare(on_d, specs, passed, d)
        stored = stored_values.filter(pl.col("rebalance_date") == d)
        if d in trusted:
            if not names:
                continue
            values = stored.sort(KEY)  # in the order the recomputation comes in
        else:
            mem = None
            if membership is not None and membership.height:
                mem = truncate_membership(membership, d)
            values = compute(
                price_window(prices, max_stale_days, before=d),
                fundamentals_known_at(vintages, d, available_before=d),
                securities,
                [d],
                mem,
                universe=universe,
                max_stale_days=max_stale_days,
                **extra,
            )
            diff = compare_rows(stored, values.select(stored.columns), KEY, "factors.values")
            found.append(diff)
            audited.append(("factors.values", None, d, stored.height, diff.height))
        if profile_columns(specs.values()):
            values = with_country(values, securities)
        for diff, row in _compare_scores(on_d, values, specs, names, d):
            found.append(diff)
            audited.append(row)
    compared = sum(row[3] for row in audited)
    mismatches = (
        pl.concat(found, how="vertical_relaxed") if found else pl.DataFrame(schema=MISMATCH_SCHEMA)
    )
    return AuditResult(
        dates=tuple(checked),
        rows_compared=compared,
        mismatches=mismatches,
        audited=pl.DataFrame(audited, schema=AUDITED_KEYS_SCHEMA, orient="row"),
    )

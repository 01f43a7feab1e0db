"""Point-in-time factor values over vintaged fundamentals (restatements seen when they were known).

``factors.values`` for rebalance date D must use the fundamentals *as the warehouse knew them at D*:
when a period was restated, the version ingested before D, not today's. The version choice depends
only on which ingestion instants (``vintage_at``) lie before D, so rebalance dates are grouped by
that set and :func:`quant_pipeline.core.factors.values.factor_values` runs once per group with that
group's as-of view (once in total when the history was loaded in one go, the usual case).

Pure polars; looks at no clock.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from datetime import date

import polars as pl

from quant_pipeline.core.data.curation import (
    FUNDAMENTAL_VINTAGE_COLUMNS,
    VINTAGE_FIRST_INGESTED,
    VINTAGE_POINT_IN_TIME,
    fundamentals_known_at,
    known_cutoff,
)
from quant_pipeline.core.data.frames import require_columns
from quant_pipeline.core.factors.values import MAX_STALE_DAYS, factor_values

VINTAGE_MIXED = "mixed"
VINTAGE_NONE = "none"
VINTAGE_REPORT_SCHEMA: dict[str, pl.DataType] = {
    "rebalance_date": pl.Date(),
    "rows_point_in_time": pl.Int64(),
    "rows_first_ingested": pl.Int64(),
    "vintage": pl.String(),
}

FactorFunction = Callable[..., pl.DataFrame]


def vintage_groups(vintages: pl.DataFrame, dates: Iterable[date]) -> list[list[date]]:
    """Rebalance dates grouped by the set of vintages known at each (sorted, groups in order).

    ``vintages``: curated.fundamentals_vintages (``vintage_at``). Two dates share a group when
    the same ``vintage_at`` instants lie at or before their :func:`known_cutoff`, so their as-of
    views of the fundamentals are identical.
    """
    instants = sorted(vintages.get_column("vintage_at").drop_nulls().unique().to_list())
    groups: dict[int, list[date]] = {}
    for d in sorted(set(dates)):
        groups.setdefault(bisect.bisect_right(instants, known_cutoff(d)), []).append(d)
    return [groups[k] for k in sorted(groups)]


def point_in_time_factor_values(
    prices: pl.DataFrame | pl.LazyFrame,
    vintages: pl.DataFrame,
    securities: pl.DataFrame | pl.LazyFrame,
    rebalance_dates: Iterable[date],
    membership: pl.DataFrame | pl.LazyFrame | None = None,
    *,
    universe: str | None = None,
    max_stale_days: int = MAX_STALE_DAYS,
    compute: FactorFunction = factor_values,
    share_basis: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """``factors.values`` where each rebalance date D sees the fundamentals versions known at D.

    ``vintages``: curated.fundamentals_vintages (see
    :func:`quant_pipeline.core.data.curation.fundamentals_vintages`); the other inputs and the
    output are those of :func:`quant_pipeline.core.factors.values.factor_values` (``compute``,
    replaceable so tests can plant a faulty factor function). For each group of
    :func:`vintage_groups` the view :func:`~quant_pipeline.core.data.curation.fundamentals_known_at`
    (first date of the group) is computed once and handed to ``compute`` with that group's dates.
    ``share_basis`` (curated.share_basis_events), when given, is handed on to ``compute``.
    """
    extra = {} if share_basis is None else {"share_basis": share_basis}
    _require_vintages(vintages)
    dates = sorted(set(rebalance_dates))
    parts = []
    for group in vintage_groups(vintages, dates):
        view = fundamentals_known_at(vintages, group[0])
        parts.append(
            compute(
                prices,
                view,
                securities,
                group,
                membership,
                universe=universe,
                max_stale_days=max_stale_days,
                **extra,
            )
        )
    if not parts:
        return compute(
            prices,
            fundamentals_known_at(vintages, date.min),
            securities,
            [],
            membership,
            universe=universe,
            max_stale_days=max_stale_days,
            **extra,
        )
    return pl.concat(parts, how="vertical").sort("rebalance_date", "ticker")


def vintage_report(vintages: pl.DataFrame, rebalance_dates: Iterable[date]) -> pl.DataFrame:
    """Per rebalance date, how many usable fundamentals rows were truly point in time.

    Counts the rows of the as-of view with ``available_at`` before D by ``vintage``:
    ``rows_point_in_time`` (the version known at D) and ``rows_first_ingested`` (ingested after
    D; the earliest version stands in). ``vintage`` is ``'point_in_time'`` when every row is,
    ``'first_ingested'`` when none is, ``'mixed'`` otherwise and ``'none'`` without rows.
    Columns: ``VINTAGE_REPORT_SCHEMA``, sorted by date.
    """
    _require_vintages(vintages)
    parts = []
    for group in vintage_groups(vintages, rebalance_dates):
        view = fundamentals_known_at(vintages, group[0]).select("available_at", "vintage")
        dates = pl.DataFrame({"rebalance_date": group}, schema={"rebalance_date": pl.Date})
        usable = dates.join(view, how="cross").filter(
            pl.col("available_at") < pl.col("rebalance_date")
        )
        counts = dates.join(
            usable.group_by("rebalance_date").agg(
                (pl.col("vintage") == VINTAGE_POINT_IN_TIME).sum().alias("rows_point_in_time"),
                (pl.col("vintage") == VINTAGE_FIRST_INGESTED).sum().alias("rows_first_ingested"),
            ),
            on="rebalance_date",
            how="left",
        ).with_columns(pl.col("rows_point_in_time", "rows_first_ingested").fill_null(0))
        parts.append(counts)
    if not parts:
        return pl.DataFrame(schema=VINTAGE_REPORT_SCHEMA)
    pit, first = pl.col("rows_point_in_time"), pl.col("rows_first_ingested")
    return (
        pl.concat(parts, how="vertical_relaxed")
        .with_columns(
            vintage=pl.when((pit == 0) & (first == 0))
            .then(pl.lit(VINTAGE_NONE))
            .when(first == 0)
            .then(pl.lit(VINTAGE_POINT_IN_TIME))
            .when(pit == 0)
            .then(pl.lit(VINTAGE_FIRST_INGESTED))
            .otherwise(pl.lit(VINTAGE_MIXED))
        )
        .select([pl.col(c).cast(t) for c, t in VINTAGE_REPORT_SCHEMA.items()])
        .sort("rebalance_date")
    )


def _require_vintages(vintages: pl.DataFrame) -> None:
    require_columns(vintages, FUNDAMENTAL_VINTAGE_COLUMNS, "curated.fundamentals_vintages")

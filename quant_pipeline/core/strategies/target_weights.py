"""Target weights from scores: ``portfolio.target_weights`` and ``portfolio.constraint_report``.

Input is ``factors.scores`` for one strategy; only rows of the same rebalance date are compared,
so the weights for D use exactly what the scores for D used (see core.factors.values for the
timing).

Selection per rebalance date, greedy by rank (1 = best) over eligible, ranked names: a name is
skipped when its sector already holds ``floor(max_sector_weight x top_n)`` names (at least 1);
selection stops at ``top_n``. Equal weights 1/n over the n selected names. When fewer than
``top_n`` names can be selected, 1/n per name can put a sector above the cap: the report row
says ``cap_met = false`` with a note, never silently. Names without a sector share one bucket
(unknown), so they are capped together.

Vectorised: a name's position within its (date, sector) in rank order is a cumulative count, so
"sector not yet full" is a column test and the first ``top_n`` survivors are the greedy choice.
"""

from __future__ import annotations

import polars as pl

from quant_pipeline.core.data.frames import require_columns
from quant_pipeline.core.strategies.spec import StrategySpec, sector_name_limit

BY = "rebalance_date"
# The factors.scores columns portfolio construction reads (target_weights and staggered).
SCORE_COLUMNS: tuple[str, ...] = (BY, "ticker", "sector", "eligible", "score", "rank")
WEIGHTS_SCHEMA: dict[str, pl.DataType] = {
    "strategy": pl.String(),
    "rebalance_date": pl.Date(),
    "ticker": pl.String(),
    "sector": pl.String(),
    "weight": pl.Float64(),
    "score": pl.Float64(),
    "rank": pl.Int64(),
}
REPORT_SCHEMA: dict[str, pl.DataType] = {
    "strategy": pl.String(),
    "rebalance_date": pl.Date(),
    "n_eligible": pl.Int64(),
    "n_selected": pl.Int64(),
    "target_n": pl.Int64(),
    "max_sector_weight": pl.Float64(),
    "sector_cap": pl.Float64(),
    "cap_met": pl.Boolean(),
    "note": pl.String(),
}
CAP_EPS = 1e-9


def names_per_sector(spec: StrategySpec) -> int:
    """The most names one sector may hold: floor(cap x top_n), at least 1 (top_n if no cap)."""
    return sector_name_limit(spec.portfolio.max_sector_weight, spec.portfolio.top_n)


def target_weights(scores: pl.DataFrame, spec: StrategySpec) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Equal-weight the best-ranked names per rebalance date under the sector cap.

    Expects factors.scores (rebalance_date, ticker, sector, eligible, score, rank) for this
    strategy. Returns (portfolio.target_weights, portfolio.constraint_report):

    * target_weights: strategy, rebalance_date, ticker, sector, weight, score, rank; weights sum
      to 1 on every date with at least one selected name (a date with none has no rows);
    * constraint_report, one row per rebalance date of ``scores``: n_eligible, n_selected,
      target_n, max_sector_weight (the largest realised sector weight), sector_cap (the configured
      limit, null without one), cap_met and a note explaining any shortfall.
    """
    require_columns(scores, SCORE_COLUMNS, "factors.scores")
    candidates = _selected_names(ranked_names(scores), spec)
    return _equal_weights(candidates, spec), _constraint_report(scores, candidates, spec)


def ranked_names(scores: pl.DataFrame) -> pl.DataFrame:
    """The eligible, ranked rows of factors.scores in selection order (date, rank, ticker),
    with their sector bucket (null sector = one bucket) and position in it (0 = the sector's
    best): what :func:`selected_weights` reads.
    Computed once, it serves every top_n and sector cap (a sweep's variants)."""
    require_columns(scores, SCORE_COLUMNS, "factors.scores")
    return (
        scores.filter(pl.col("eligible") & pl.col("rank").is_not_null())
        .with_columns(_bucket=pl.col("sector").fill_null("<unknown>"))
        .sort(BY, "rank", "ticker")
        .with_columns(_in_sector=pl.int_range(pl.len()).over(BY, "_bucket"))
    )


def selected_weights(ranked: pl.DataFrame, spec: StrategySpec) -> pl.DataFrame:
    """portfolio.target_weights from :func:`ranked_names` (the same rows as
    ``target_weights(scores, spec)[0]``, without the constraint report)."""
    return _equal_weights(_selected_names(ranked, spec), spec)


def _equal_weights(candidates: pl.DataFrame, spec: StrategySpec) -> pl.DataFrame:
    return (
        candidates.with_columns(
            weight=1.0 / pl.len().over(BY),
            strategy=pl.lit(spec.name),
        )
        .select([pl.col(c).cast(t) for c, t in WEIGHTS_SCHEMA.items()])
        .sort(BY, "rank")
    )


def _selected_names(ranked: pl.DataFrame, spec: StrategySpec) -> pl.DataFrame:
    """Per date the ranked names (:func:`ranked_names`: in rank order, with their position in
    their sector) keeping at most :func:`names_per_sector` per sector and ``top_n`` in all."""
    per_sector = names_per_sector(spec)
    return (
        ranked.filter(pl.col("_in_sector") < per_sector)
        .with_columns(_pos=pl.int_range(pl.len()).over(BY))
        .filter(pl.col("_pos") < spec.portfolio.top_n)
    )


def _constraint_report(
    scores: pl.DataFrame, candidates: pl.DataFrame, spec: StrategySpec
) -> pl.DataFrame:
    """portfolio.constraint_report: one row per rebalance date of ``scores``."""
    top_n = spec.portfolio.top_n
    cap = spec.portfolio.max_sector_weight
    dates = scores.group_by(BY).agg(n_eligible=pl.col("eligible").sum().cast(pl.Int64))
    realised = (
        candidates.group_by(BY, "_bucket")
        .agg(pl.len().alias("_k"))
        .group_by(BY)
        .agg(n_selected=pl.col("_k").sum().cast(pl.Int64), _max_k=pl.col("_k").max())
    )
    report = dates.join(realised, on=BY, how="left").with_columns(
        pl.col("n_selected").fill_null(0),
        max_sector_weight=pl.col("_max_k") / pl.col("n_selected"),
    )
    cap_lit = pl.lit(cap, pl.Float64)
    over_cap = (pl.col("max_sector_weight") > cap_lit + CAP_EPS).fill_null(False)
    return (
        report.with_columns(
            strategy=pl.lit(spec.name),
            target_n=pl.lit(top_n, pl.Int64),
            sector_cap=cap_lit,
            cap_met=~over_cap,
            note=_shortfall_note(over_cap, spec),
        )
        .select([pl.col(c).cast(t) for c, t in REPORT_SCHEMA.items()])
        .sort(BY)
    )


def _shortfall_note(over_cap: pl.Expr, spec: StrategySpec) -> pl.Expr:
    """Why a date has fewer than ``top_n`` names or breaks the cap ("" when neither)."""
    top_n = spec.portfolio.top_n
    per_sector = names_per_sector(spec)
    cap = spec.portfolio.max_sector_weight
    short = pl.col("n_selected") < top_n
    rule = f"at most {per_sector} names per sector" if cap is not None else "no sector cap"
    return (
        pl.when(pl.col("n_selected") == 0)
        .then(pl.lit(f"no eligible ranked names; portfolio empty ({rule})"))
        .when(over_cap & short)
        .then(
            pl.format(
                "only {} of {} names selectable ({}); largest sector holds {}, over the cap",
                "n_selected",
                pl.lit(top_n),
                pl.lit(rule),
                "_max_k",
            )
        )
        .when(over_cap)
        .then(pl.lit(f"cap x top_n is below one name; kept {rule}, above the cap"))
        .when(short)
        .then(
            pl.format(
                "only {} of {} names selectable ({})", "n_selected", pl.lit(top_n), pl.lit(rule)
            )
        )
        .otherwise(pl.lit(""))
    )

"""Strategy scores per (rebalance_date, ticker): factors.scores and factors.score_components.

Input is ``factors.values`` (see :mod:`quant_pipeline.core.factors.values`), which is already point
in time; scoring only looks across tickers *within* one rebalance date, never across dates. Every
cross-sectional statistic (winsor bounds, mean, std, ranks) is computed per rebalance_date over that
date's **eligible** rows only, so an ineligible outlier cannot move anyone's score.

Eligibility = ``in_universe`` and a price, and every universe filter of the strategy (a filter
on a value the row lacks, e.g. ``min_market_cap`` with market_cap null, makes the row ineligible).

Methods
-------
``weighted_zscore`` (score: higher is better)
    Per factor: winsorize at the configured quantiles, z-score, flip the sign when lower is
    better. A group score is the weighted mean of the factor z-scores the ticker has (weights
    renormalised over the available ones); the composite is the weighted mean of the available
    group scores. The share of the total weight that was available is sum over groups of
    (group weight x available factor weight); below ``min_weight_available`` (default 0.5) the
    ticker stays eligible but gets score and rank null: too little is known to rank it.
``rank_sum`` (score: lower is better, e.g. Greenblatt's magic formula)
    Per factor: rank among the eligible tickers that have *every* factor (1 = best, ties share the
    lowest rank); score = sum of ranks, each multiplied by its weight x number of factors (so equal
    weights give the plain sum). A ticker missing a factor is eligible but unranked.

``rank`` is 1 = best, 1..n over the scored eligible tickers of a date, ties broken by ticker.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import polars as pl

from quant_pipeline.core.data.frames import require_columns
from quant_pipeline.core.factors.transforms import rank as cs_rank
from quant_pipeline.core.factors.transforms import winsorize, zscore
from quant_pipeline.core.strategies.screen import required_columns, rule_checks
from quant_pipeline.core.strategies.spec import StrategySpec

BY = "rebalance_date"
SCORES_SCHEMA: dict[str, pl.DataType] = {
    "strategy": pl.String(),
    "rebalance_date": pl.Date(),
    "ticker": pl.String(),
    "sector": pl.String(),
    "eligible": pl.Boolean(),
    "score": pl.Float64(),
    "rank": pl.Int64(),
}
COMPONENTS_SCHEMA: dict[str, pl.DataType] = {
    "strategy": pl.String(),
    "rebalance_date": pl.Date(),
    "ticker": pl.String(),
    "component": pl.String(),
    "value": pl.Float64(),
    "score": pl.Float64(),
}
WEIGHT_EPS = 1e-9


class ScoringInputError(ValueError):
    """factors.values lacks a column the strategy needs."""


def eligibility(spec: StrategySpec) -> pl.Expr:
    """Boolean expression over factors.values rows: in_universe, priced, and the spec's filters."""
    u = spec.universe
    cond = pl.col("in_universe").fill_null(False) & pl.col("price").is_not_null()
    bounds = (
        ("market_cap", u.min_market_cap, u.max_market_cap),
        ("avg_volume", u.min_avg_volume, None),
        ("avg_dollar_volume", u.min_avg_dollar_volume, None),
        ("price", u.min_price, None),
    )
    for column, low, high in bounds:
        if low is not None:
            cond = cond & (pl.col(column) >= low).fill_null(False)
        if high is not None:
            cond = cond & (pl.col(column) <= high).fill_null(False)
    if u.exclude_sectors:
        cond = cond & ~pl.col("sector").is_in(list(u.exclude_sectors)).fill_null(False)
    if u.include_sectors is not None:
        cond = cond & pl.col("sector").is_in(list(u.include_sectors)).fill_null(False)
    if u.countries is not None:
        # "when known": a name whose country is unknown is kept
        cond = cond & pl.col("country").is_in(list(u.countries)).fill_null(True)
    if u.exchanges is not None:
        # LEAN's exchange filter keeps listed names only: an unknown exchange fails
        cond = cond & pl.col("exchange").is_in(list(u.exchanges)).fill_null(False)
    if u.screen_rules is not None:
        for _, passes, _ in rule_checks(u.screen_rules):
            cond = cond & passes
    for column, low, high in u.screens:
        if low is not None:
            cond = cond & (pl.col(column) >= low).fill_null(False)
        if high is not None:
            cond = cond & (pl.col(column) <= high).fill_null(False)
    return cond


def eligibility_columns(spec: StrategySpec) -> set[str]:
    """Columns of factors.values (plus ``country``) that :func:`eligibility` reads."""
    cols = {"in_universe", "price", "market_cap", "avg_volume", "avg_dollar_volume", "sector"}
    cols |= {column for column, _, _ in spec.universe.screens}
    if spec.universe.countries is not None:
        cols.add("country")
    if spec.universe.exchanges is not None:
        cols.add("exchange")
    if spec.universe.screen_rules is not None:
        cols |= required_columns(spec.universe.screen_rules) - {"ticker"}
    return cols


def profile_columns(specs: Iterable[StrategySpec]) -> bool:
    """True when a spec's eligibility reads the profile's country or exchange (see with_country)."""
    return any({"country", "exchange"} & eligibility_columns(s) for s in specs)


def score(
    values: pl.DataFrame,
    spec: StrategySpec,
    components: bool = True,
    zscored: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Score ``values`` (factors.values) with ``spec``: returns (factors.scores, score_components).

    Expects columns rebalance_date, ticker, sector, in_universe, price, market_cap, avg_volume,
    avg_dollar_volume, every factor the spec uses or screens on, and ``country`` (from
    curated.securities) when the spec restricts countries. Looks only at rows of the same
    rebalance_date. ``scores`` has one row per input row (ineligible rows: score and rank null);
    ``components`` (long: component, value, score) has, for eligible rows, one row per factor
    (value = raw factor, score = signed z-score or the factor rank) and, for weighted_zscore, one
    per group (component ``group:<name>``, value null). ``components=False`` skips building
    it (an empty frame comes back): a sweep reads only the scores, and the long frame is most
    of the cost (~15 rows per eligible row).

    ``zscored`` (weighted_zscore only): :func:`factor_zscores` of ``values`` for a spec with the
    same :func:`zscore_key` (a sweep over group weights computes the factor z-scores once).
    """
    if spec.scoring.method == "weighted_zscore":
        frame = factor_zscores(values, spec) if zscored is None else zscored
        frame, parts, higher_is_better = _weighted_composite(frame, spec)
    else:
        frame, parts, higher_is_better = _rank_sum(_eligible_frame(values, spec), spec)

    scored = pl.col("score").is_not_null()
    order = pl.col("score") if not higher_is_better else -pl.col("score")
    frame = frame.sort([pl.col(BY), order, pl.col("ticker")], nulls_last=True).with_columns(
        rank=pl.when(scored).then(scored.cast(pl.Int64).cum_sum().over(BY))
    )
    scores = (
        frame.with_columns(strategy=pl.lit(spec.name))
        .select([pl.col(c).cast(t) for c, t in SCORES_SCHEMA.items()])
        .sort(BY, "ticker")
    )
    if not components:
        return scores, pl.DataFrame(schema=COMPONENTS_SCHEMA)
    eligible = frame.filter(pl.col("eligible"))
    long = (
        pl.concat(
            [
                eligible.select(
                    BY,
                    "ticker",
                    pl.lit(name).alias("component"),
                    value.cast(pl.Float64).alias("value"),
                    part.cast(pl.Float64).alias("score"),
                )
                for name, value, part in parts
            ]
        )
        .with_columns(strategy=pl.lit(spec.name))
        .select([pl.col(c).cast(t) for c, t in COMPONENTS_SCHEMA.items()])
        .sort(BY, "ticker", "component")
    )
    return scores, long


def _eligible_frame(values: pl.DataFrame, spec: StrategySpec) -> pl.DataFrame:
    """The columns scoring reads, checked, plus ``eligible``."""
    needed = {
        "rebalance_date",
        "ticker",
        "sector",
        "in_universe",
        "price",
        "market_cap",
        "avg_volume",
        "avg_dollar_volume",
        *spec.scoring.factors,
        *eligibility_columns(spec),
    }
    require_columns(
        values, sorted(needed), f"factors.values (for strategy {spec.name!r})", ScoringInputError
    )
    return values.select(sorted(needed)).with_columns(eligible=eligibility(spec))


def zscore_key(spec: StrategySpec) -> str:
    """What a weighted_zscore strategy's factor z-scores depend on: universe, winsorize bounds
    and each factor with its direction (not the group or factor weights)."""
    d = spec.to_dict()
    factors = sorted(
        {(f.factor, f.higher_is_better) for g in spec.scoring.groups for f in g.factors}
    )
    return json.dumps([d["universe"], spec.scoring.winsorize, factors], sort_keys=True)


def factor_zscores(values: pl.DataFrame, spec: StrategySpec) -> pl.DataFrame:
    """The eligible frame with each factor's signed z-score ``_z_<factor>`` per rebalance date
    (winsorized first when the spec says so) over the eligible rows: the step of
    weighted_zscore scoring that group weights do not change."""
    frame = _eligible_frame(values, spec)
    mask = pl.col("eligible")
    rules = spec.scoring
    factors = [f for group in rules.groups for f in group.factors]
    source = {f.factor: pl.col(f.factor) for f in factors}
    if rules.winsorize is not None:
        # Winsorized values as columns first: nested inside the z-score, the clip (two
        # quantiles per date) was evaluated once per reference, four times (5x slower).
        lo, hi = rules.winsorize
        frame = frame.with_columns(
            **{f"_w_{f}": winsorize(x, lo, hi, BY, mask) for f, x in source.items()}
        )
        source = {f: pl.col(f"_w_{f}") for f in source}
    zs = {}
    for f in factors:
        z = zscore(source[f.factor], BY, mask)
        zs[f"_z_{f.factor}"] = z if f.higher_is_better else -z
    return frame.with_columns(**zs)


def _weighted_composite(
    frame: pl.DataFrame, spec: StrategySpec
) -> tuple[pl.DataFrame, list[tuple[str, pl.Expr, pl.Expr]], bool]:
    rules = spec.scoring
    require_columns(
        frame,
        [f"_z_{f.factor}" for g in rules.groups for f in g.factors],
        "factor z-scores",
        ScoringInputError,
    )
    group_cols = {}
    for group in rules.groups:
        num = pl.sum_horizontal(
            [pl.col(f"_z_{f.factor}").fill_null(0.0) * f.weight for f in group.factors]
        )
        den = pl.sum_horizontal(
            [
                pl.col(f"_z_{f.factor}").is_not_null().cast(pl.Float64) * f.weight
                for f in group.factors
            ]
        )
        group_cols[f"_g_{group.name}"] = pl.when(den > WEIGHT_EPS).then(num / den)
        group_cols[f"_a_{group.name}"] = den
    frame = frame.with_columns(**group_cols)

    num = pl.sum_horizontal(
        [pl.col(f"_g_{g.name}").fill_null(0.0) * g.weight for g in rules.groups]
    )
    den = pl.sum_horizontal(
        [pl.col(f"_g_{g.name}").is_not_null().cast(pl.Float64) * g.weight for g in rules.groups]
    )
    available = pl.sum_horizontal([pl.col(f"_a_{g.name}") * g.weight for g in rules.groups])
    enough = pl.col("eligible") & (available >= rules.min_weight_available - WEIGHT_EPS)
    frame = frame.with_columns(score=pl.when(enough & (den > WEIGHT_EPS)).then(num / den))

    parts = [
        (f.factor, pl.col(f.factor), pl.col(f"_z_{f.factor}"))
        for g in rules.groups
        for f in g.factors
    ]
    parts += [
        (f"group:{g.name}", pl.lit(None, pl.Float64), pl.col(f"_g_{g.name}")) for g in rules.groups
    ]
    return frame, parts, True


def _rank_sum(
    frame: pl.DataFrame, spec: StrategySpec
) -> tuple[pl.DataFrame, list[tuple[str, pl.Expr, pl.Expr]], bool]:
    factors = [(g, f) for g in spec.scoring.groups for f in g.factors]
    complete = pl.col("eligible") & pl.all_horizontal(
        [pl.col(f.factor).is_not_null() for _, f in factors]
    )
    frame = frame.with_columns(_complete=complete)
    ranks = {
        f"_r_{f.factor}": cs_rank(
            pl.col(f.factor),
            BY,
            pl.col("_complete"),
            descending=f.higher_is_better,
            method="min",
        )
        for _, f in factors
    }
    frame = frame.with_columns(**ranks)
    scale = len(factors)
    total = pl.sum_horizontal(
        [pl.col(f"_r_{f.factor}") * (g.weight * f.weight * scale) for g, f in factors]
    )
    frame = frame.with_columns(score=pl.when(pl.col("_complete")).then(total))
    parts = [(f.factor, pl.col(f.factor), pl.col(f"_r_{f.factor}")) for _, f in factors]
    return frame, parts, False


def with_country(values: pl.DataFrame, securities: pl.DataFrame) -> pl.DataFrame:
    """factors.values plus curated.securities' country and exchange (null when the source does
    not say)."""
    for column in ("country", "exchange"):
        if column in values.columns:
            continue
        if column not in securities.columns:
            values = values.with_columns(pl.lit(None, pl.String).alias(column))
        else:
            profile = securities.select("ticker", column).unique("ticker")
            values = values.join(profile, on="ticker", how="left")
    return values

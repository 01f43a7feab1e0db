"""Cross-sectional transforms as polars expressions (zipline's vocabulary: demean, zscore, rank,
winsorize), each with an optional ``mask`` and ``by`` grouping.

``by`` is the cross-section, usually ``"rebalance_date"`` (or ``["rebalance_date", "sector"]``).
``mask`` is a boolean expression: rows outside it are left out of the statistics *and* get null,
so a statistic on date D is computed over D's masked rows only (the eligible universe) and an
ineligible outlier cannot move anybody's score. The expressions only look at rows of the same
``by`` group, i.e. the same rebalance date: no information crosses dates.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

By = str | Sequence[str] | None
RANK_METHODS = ("average", "min", "max", "dense", "ordinal")


def _masked(expr: pl.Expr, mask: pl.Expr | None) -> pl.Expr:
    return expr if mask is None else pl.when(mask).then(expr).otherwise(None)


def _over(expr: pl.Expr, by: By) -> pl.Expr:
    if by is None:
        return expr
    return expr.over(by if isinstance(by, str) else list(by))


def winsorize(
    expr: pl.Expr,
    lower: float = 0.05,
    upper: float = 0.95,
    by: By = "rebalance_date",
    mask: pl.Expr | None = None,
) -> pl.Expr:
    """Clip ``expr`` to its [lower, upper] quantiles (linear interpolation) within each group.

    Nulls stay null. Raises ValueError unless 0 <= lower < upper <= 1.
    """
    if not 0.0 <= lower < upper <= 1.0:
        raise ValueError(f"winsorize needs 0 <= lower < upper <= 1, got ({lower}, {upper})")
    x = _masked(expr, mask)
    lo = _over(x.quantile(lower, "linear"), by)
    hi = _over(x.quantile(upper, "linear"), by)
    return x.clip(lo, hi)


def demean(expr: pl.Expr, by: By = "rebalance_date", mask: pl.Expr | None = None) -> pl.Expr:
    """``expr`` minus its group mean (over non-null masked rows)."""
    x = _masked(expr, mask)
    return x - _over(x.mean(), by)


def zscore(expr: pl.Expr, by: By = "rebalance_date", mask: pl.Expr | None = None) -> pl.Expr:
    """(x - mean) / std within each group (sample std, ddof=1, over non-null masked rows).

    A group whose std is zero or undefined (one value, or all equal) carries no information:
    its non-null values get 0.0 rather than NaN or infinity.
    """
    x = _masked(expr, mask)
    std = _over(x.std(), by)
    z = (x - _over(x.mean(), by)) / std
    return pl.when(x.is_null()).then(None).when(std.is_null() | (std == 0)).then(0.0).otherwise(z)


def rank(
    expr: pl.Expr,
    by: By = "rebalance_date",
    mask: pl.Expr | None = None,
    *,
    descending: bool = False,
    method: str = "average",
) -> pl.Expr:
    """Rank within each group, 1 = smallest (or largest with ``descending``); nulls stay null.

    ``method`` is polars' tie rule ('average', 'min', 'max', 'dense', 'ordinal'); the result is
    Float64 so 'average' ties (2.5) survive.
    """
    if method not in RANK_METHODS:
        raise ValueError(f"rank method {method!r} is not one of {RANK_METHODS}")
    x = _masked(expr, mask)
    return _over(x.rank(method, descending=descending).cast(pl.Float64), by)  # type: ignore[arg-type]

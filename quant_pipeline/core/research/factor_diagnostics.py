"""Factor diagnostics in the manner of alphalens: does a factor rank tomorrow's winners?

Inputs are a factor frame (``factors.values`` or ``factors.scores``)::

    rebalance_date | ticker | <factor columns ...>

and forward returns from :func:`forward_returns`::

    rebalance_date | ticker | forward_return

Forward returns are labels: they are computed from prices after the rebalance date and must
never feed a score; they are only joined to factor values here, to judge them. The convention is
"higher factor value = expected higher return" (flip the sign of a factor where lower is better).
A factor value at D uses data before D; the forward return runs from D's close (where the
backtest executes) to the next rebalance date's close, so the two never overlap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date

import polars as pl

from quant_pipeline.core.data.frames import is_sorted_by, require_columns

_D = "rebalance_date"


def forward_returns(
    prices: pl.DataFrame, rebalance_dates: Sequence[date] | pl.Series
) -> pl.DataFrame:
    """Return from the close of each rebalance date D to the close of the next one.

    ``prices``: curated.prices (ticker, date, adj_close). ``rebalance_dates``: the schedule.
    For each D except the last (which has no next date) and each ticker alive at D (a price on
    or before D and one on or after D): forward_return = P_end / P_start - 1, where P_start is
    the last adj_close on or before D and P_end the last adj_close on or before the next date.
    A ticker delisted in between therefore takes the return to its last price.
    Looks at prices after D by design: the result is a label, not an input.

    Returns (rebalance_date, ticker, forward_return) sorted by date and ticker.
    """
    require_columns(prices, ("ticker", "date", "adj_close"), "prices")
    dates = pl.Series(_D, rebalance_dates, dtype=pl.Date).unique().sort()
    schema = {_D: pl.Date, "ticker": pl.String, "forward_return": pl.Float64}
    if dates.len() < 2 or prices.is_empty():
        return pl.DataFrame(schema=schema)
    # One ordered pass over the prices instead of two as-of joins over all of them: with the
    # prices in (ticker, date) order, the last adj_close on or before D_k is the last row of the
    # ticker's bucket k = dates in (D_k-1, D_k], or, when that bucket is empty, the one carried
    # forward from the buckets before it. Prices after the last date fall in bucket n: they only
    # tell that the ticker is still alive at D_n-1.
    n = dates.len()
    px = prices.select("ticker", "date", pl.col("adj_close").cast(pl.Float64)).filter(
        pl.col("adj_close").is_not_null()
    )
    if not is_sorted_by(px, ["ticker", "date"]):
        px = px.sort("ticker", "date", maintain_order=True)
    tid, k = pl.col("_t"), pl.col("_k")
    ends = (  # lazily: one streaming pass keeps only the bucket ends of the 14M rows
        px.lazy()
        .with_columns(
            _t=pl.col("ticker").rle_id(),
            _k=pl.lit(dates).search_sorted(pl.col("date"), side="left").cast(pl.Int32),
        )
        .filter(((tid != tid.shift(-1)) | (k != k.shift(-1))).fill_null(True))
        .select("ticker", "_k", "date", "adj_close")
        .collect()
    )
    life = ends.group_by("ticker").agg(
        k.min().alias("_k_first"), pl.col("date").max().alias("_last")
    )
    periods = pl.DataFrame({_D: dates, "_k": pl.int_range(0, n, dtype=pl.Int32, eager=True)})
    grid = (
        life.join(periods, how="cross")
        .join(ends.select("ticker", "_k", "adj_close"), on=["ticker", "_k"], how="left")
        .sort("ticker", "_k")
        .with_columns(_p0=pl.col("adj_close").forward_fill().over("ticker"))
        .with_columns(_p1=pl.col("_p0").shift(-1).over("ticker"))
    )
    # alive at D: a price on or before D (bucket <= k) and one on or after D
    alive = (k < n - 1) & (pl.col("_k_first") <= k) & (pl.col("_last") >= pl.col(_D))
    return (
        grid.filter(alive)
        .select(_D, "ticker", (pl.col("_p1") / pl.col("_p0") - 1.0).alias("forward_return"))
        .filter(pl.col("forward_return").is_finite())
        .sort(_D, "ticker")
    )


# ---- the long form: one pass for many factors ------------------------------------------------
# The single-factor functions below and core.research.tables.factor_diagnostics share these
# helpers. They work on a "long" frame (*by, rebalance_date, ticker, _f) whose _f is a finite
# Float64 factor value; ``by`` holds the keys that tell factors apart (("factor",) for many, ()
# for one), so every rank, quantile and period index is taken per (*by, rebalance_date) in a
# single polars pass.


def long_values(factor_frame: pl.DataFrame, factors: Sequence[str]) -> pl.DataFrame:
    """(factor, ticker, rebalance_date, _f): the finite values of each factor column, stacked.

    ``factor`` is the factor's position in ``factors`` and ``ticker`` a per-frame Int32 code:
    integer keys keep the many window and group-by passes cheap."""
    require_columns(factor_frame, (_D, "ticker", *factors), "factor frame")
    wide = factor_frame.select(
        _D,
        pl.col("ticker").rank("dense").cast(pl.Int32),
        *[pl.col(f).cast(pl.Float64) for f in factors],
    ).sort("ticker", _D)
    # stacked in (factor, ticker, date) order, so lagged_long needs no sort of the long frame
    return _stack(wide, factors, ("ticker", _D))


def _stack(wide: pl.DataFrame, factors: Sequence[str], keep: Sequence[str]) -> pl.DataFrame:
    if not factors:
        return pl.DataFrame(
            schema={"factor": pl.Int32, **wide.select(keep).schema, "_f": pl.Float64}
        )
    return pl.concat(
        [
            wide.select(
                pl.lit(i, dtype=pl.Int32).alias("factor"), *keep, pl.col(f).alias("_f")
            ).filter(pl.col("_f").is_finite())
            for i, f in enumerate(factors)
        ]
    )


def long_joined(
    factor_frame: pl.DataFrame, factors: Sequence[str], fwd: pl.DataFrame
) -> pl.DataFrame:
    """(factor, rebalance_date, _f, forward_return): finite values joined to finite returns.

    The join runs once on the wide frame; ``factor`` is the position in ``factors``."""
    require_columns(factor_frame, (_D, "ticker", *factors), "factor frame")
    require_columns(fwd, (_D, "ticker", "forward_return"), "forward returns")
    wide = (
        factor_frame.select(_D, "ticker", *[pl.col(f).cast(pl.Float64) for f in factors])
        .join(fwd.select(_D, "ticker", "forward_return"), on=[_D, "ticker"], how="inner")
        .filter(pl.col("forward_return").is_finite())
    )
    return _stack(wide, factors, (_D, "forward_return"))


def _single(factor_frame: pl.DataFrame, factor_col: str) -> pl.DataFrame:
    require_columns(factor_frame, (_D, "ticker", factor_col), "factor frame")
    return factor_frame.select(
        _D, "ticker", pl.col(factor_col).cast(pl.Float64).alias("_f")
    ).filter(pl.col("_f").is_finite())


def _join_returns(values: pl.DataFrame, fwd: pl.DataFrame) -> pl.DataFrame:
    """Finite factor values joined to finite forward returns on (rebalance_date, ticker)."""
    require_columns(fwd, (_D, "ticker", "forward_return"), "forward returns")
    return values.join(
        fwd.select(_D, "ticker", "forward_return"), on=[_D, "ticker"], how="inner"
    ).filter(pl.col("forward_return").is_finite())


def _over(expr: pl.Expr, by: Sequence[str]) -> pl.Expr:
    return expr.over([*by, _D])


def ranked_long(joined: pl.DataFrame, quantiles: int, by: Sequence[str] = ()) -> pl.DataFrame:
    """Adds the per-(*by, date) ranks ``_rf``, ``_rr`` and the factor ``quantile`` to a joined
    frame, once, for both :func:`ic_long` and :func:`quantile_returns_long`."""
    _check_quantiles(quantiles)
    return joined.with_columns(
        _rf=_over(pl.col("_f").rank("average"), by),
        _rr=_over(pl.col("forward_return").rank("average"), by),
        _n=_over(pl.len(), by),
    ).with_columns(quantile=_quantile_of("_rf", "_n", quantiles))


def ic_long(joined: pl.DataFrame, by: Sequence[str] = ()) -> pl.DataFrame:
    """(*by, rebalance_date, ic, n) from a joined (or :func:`ranked_long`) frame."""
    ranked = joined if "_rr" in joined.columns else ranked_long(joined, 2, by)
    return (
        ranked.group_by(*by, _D)
        .agg(pl.corr("_rf", "_rr").alias("ic"), pl.len().cast(pl.Int64).alias("n"))
        .with_columns(pl.col("ic").fill_nan(None))
        .sort(*by, _D)
    )


def quantile_returns_long(
    joined: pl.DataFrame, quantiles: int, by: Sequence[str] = ()
) -> pl.DataFrame:
    """(*by, rebalance_date, quantile, mean_forward_return, n) from a joined frame, or from
    :func:`ranked_long` with the same ``quantiles``; see quantile_returns."""
    _check_quantiles(quantiles)
    ranked = joined if "quantile" in joined.columns else ranked_long(joined, quantiles, by)
    return (
        ranked.group_by(*by, _D, "quantile")
        .agg(
            pl.col("forward_return").mean().alias("mean_forward_return"),
            pl.len().cast(pl.Int64).alias("n"),
        )
        .sort(*by, _D, "quantile")
    )


def top_minus_bottom_long(quantile_frame: pl.DataFrame, by: Sequence[str] = ()) -> pl.DataFrame:
    """(*by, rebalance_date, top, bottom, spread); see top_minus_bottom."""
    require_columns(quantile_frame, (*by, _D, "quantile", "mean_forward_return"), "quantile frame")
    q = pl.col("quantile")
    r = pl.col("mean_forward_return")
    return (
        quantile_frame.group_by(*by, _D)
        .agg(
            r.sort_by(q).last().alias("top"),
            r.filter(q == 1).first().alias("bottom"),
        )
        .with_columns(spread=pl.col("top") - pl.col("bottom"))
        .sort(*by, _D)
    )


def _with_period_index(frame: pl.DataFrame, by: Sequence[str] = ()) -> pl.DataFrame:
    p = pl.col(_D).rank("dense").cast(pl.Int64)
    return frame.with_columns(_p=p.over(by) if by else p)


def lagged_long(values: pl.DataFrame, quantiles: int, by: Sequence[str] = ()) -> pl.DataFrame:
    """Finite values with their period index ``_p``, quantile ``_q`` and, from the ticker's
    previous period (``_p`` - 1; else null), the value ``_f0`` and quantile ``_q0``.

    Sorted by (*by, ticker, date), a ticker's previous period can only be the row above it: one
    sort and shift for :func:`turnover_long` and :func:`rank_autocorrelation_long` together
    instead of a self-join each."""
    _check_quantiles(quantiles)
    keys = [*by, "ticker"]
    same = pl.all_horizontal([pl.col(k) == pl.col(k).shift(1) for k in keys]) & (
        pl.col("_p").shift(1) == pl.col("_p") - 1
    )
    ranked = _with_period_index(values.with_columns(_q=_quantile_expr("_f", quantiles, by)), by)
    if not is_sorted_by(ranked, [*keys, _D]):
        ranked = ranked.sort(*keys, _D)
    return ranked.with_columns(
        pl.when(same).then(pl.col("_f").shift(1)).alias("_f0"),
        pl.when(same).then(pl.col("_q").shift(1)).alias("_q0"),
    )


def turnover_long(
    values: pl.DataFrame, quantiles: int, quantile: int | None = None, by: Sequence[str] = ()
) -> pl.DataFrame:
    """(*by, rebalance_date, turnover) from finite values, or from :func:`lagged_long` with the
    same ``quantiles``; see factor_turnover."""
    _check_quantiles(quantiles)
    q = quantiles if quantile is None else quantile
    if not 1 <= q <= quantiles:
        raise ValueError(f"parameter 'quantile' must be in 1..{quantiles}, got {q!r}")
    lagged = values if "_q0" in values.columns else lagged_long(values, quantiles, by)
    return (
        lagged.filter((pl.col("_q") == q) & (pl.col("_p") > 1))
        .with_columns(_was=(pl.col("_q0") == q).fill_null(False))
        .group_by(*by, _D)
        .agg((1.0 - pl.col("_was").cast(pl.Float64).mean()).alias("turnover"))
        .sort(*by, _D)
    )


def rank_autocorrelation_long(values: pl.DataFrame, by: Sequence[str] = ()) -> pl.DataFrame:
    """(*by, rebalance_date, autocorrelation, n) from finite values or :func:`lagged_long`;
    see rank_autocorrelation."""
    lagged = values if "_f0" in values.columns else lagged_long(values, 2, by)
    return (
        lagged.filter(pl.col("_f0").is_not_null())
        .with_columns(
            _r=_over(pl.col("_f").rank("average"), by),
            _r0=_over(pl.col("_f0").rank("average"), by),
        )
        .group_by(*by, _D)
        .agg(pl.corr("_r", "_r0").alias("autocorrelation"), pl.len().cast(pl.Int64).alias("n"))
        .with_columns(pl.col("autocorrelation").fill_nan(None))
        .sort(*by, _D)
    )


# ---- one factor -------------------------------------------------------------------------------


def information_coefficient(
    factor_frame: pl.DataFrame, factor_col: str, fwd: pl.DataFrame
) -> pl.DataFrame:
    """Spearman rank correlation between the factor and the forward return, per rebalance date.

    Rows with a null or non-finite factor or forward return are left out. ``ic`` is null on a
    date with fewer than 2 names or with a constant factor. Returns (rebalance_date, ic, n).
    """
    return ic_long(_join_returns(_single(factor_frame, factor_col), fwd))


def ic_summary(ic: pl.DataFrame) -> dict[str, float | int | None]:
    """Summary of an IC series from :func:`information_coefficient` (null ICs left out).

    mean, std (sample, ddof=1), t_stat = mean / (std / sqrt(n_periods)), hit_rate = share of
    periods with ic > 0, n_periods. Statistics that need more periods than exist are None.
    """
    require_columns(ic, ("ic",), "ic frame")
    x = ic["ic"].drop_nulls().drop_nans()
    n = x.len()
    mean = float(x.mean()) if n else None  # type: ignore[arg-type]
    std = float(x.std(ddof=1)) if n > 1 else None  # type: ignore[arg-type]
    t_stat = mean / (std / math.sqrt(n)) if (mean is not None and std) else None
    hit = float((x > 0).mean()) if n else None  # type: ignore[arg-type]
    return {"mean": mean, "std": std, "t_stat": t_stat, "hit_rate": hit, "n_periods": n}


def factor_quantile(col: str, quantiles: int, by: Sequence[str] = ()) -> pl.Expr:
    """Quantile 1..``quantiles`` of ``col`` per (*by, rebalance_date): ceil(average rank · q /
    n), 1 = the lowest values (the quantiles of every diagnostic here)."""
    _check_quantiles(quantiles)
    return _quantile_expr(col, quantiles, by)


def _quantile_expr(col: str, quantiles: int, by: Sequence[str] = ()) -> pl.Expr:
    return _quantile_of(_over(pl.col(col).rank("average"), by), _over(pl.len(), by), quantiles)


def _quantile_of(rank: str | pl.Expr, n: str | pl.Expr, quantiles: int) -> pl.Expr:
    # ceil(rank * q / n) on average ranks: quantile 1 holds the lowest values, q the highest
    rank = pl.col(rank) if isinstance(rank, str) else rank
    n = pl.col(n) if isinstance(n, str) else n
    return (rank * quantiles / n).ceil().clip(1, quantiles).cast(pl.Int32)


def _check_quantiles(quantiles: int) -> None:
    if isinstance(quantiles, bool) or not isinstance(quantiles, int) or quantiles < 2:
        raise ValueError(f"parameter 'quantiles' must be an integer >= 2, got {quantiles!r}")


def quantile_returns(
    factor_frame: pl.DataFrame, factor_col: str, fwd: pl.DataFrame, quantiles: int = 5
) -> pl.DataFrame:
    """Mean forward return per factor quantile and rebalance date.

    Names are bucketed per date by factor rank: quantile = ceil(rank x quantiles / n) (average
    ranks), so quantile 1 = lowest factor values, ``quantiles`` = highest. Returns
    (rebalance_date, quantile, mean_forward_return, n) sorted by date and quantile.
    """
    _check_quantiles(quantiles)
    return quantile_returns_long(_join_returns(_single(factor_frame, factor_col), fwd), quantiles)


def top_minus_bottom(quantile_frame: pl.DataFrame) -> pl.DataFrame:
    """Top-minus-bottom spread per date from :func:`quantile_returns`.

    spread = mean forward return of the highest quantile present that date minus that of
    quantile 1 (null when quantile 1 is missing). Returns (rebalance_date, top, bottom, spread).
    """
    return top_minus_bottom_long(quantile_frame)


def factor_turnover(
    factor_frame: pl.DataFrame, factor_col: str, quantiles: int = 5, quantile: int | None = None
) -> pl.DataFrame:
    """Share of a quantile's names that were not in it on the previous rebalance date.

    ``quantile`` defaults to the top one (``quantiles``). turnover = 1 - |now & before| / |now|.
    Uses only factor values (no returns). The first date has no previous one and is left out.
    Returns (rebalance_date, turnover).
    """
    _check_quantiles(quantiles)
    q = quantiles if quantile is None else quantile
    if not 1 <= q <= quantiles:
        raise ValueError(f"parameter 'quantile' must be in 1..{quantiles}, got {q!r}")
    return turnover_long(_single(factor_frame, factor_col), quantiles, q)


def rank_autocorrelation(factor_frame: pl.DataFrame, factor_col: str) -> pl.DataFrame:
    """Spearman correlation of each name's factor rank with its rank on the previous date.

    Over names present on both dates; high values mean a slow-moving factor (low turnover).
    The first date is left out. Returns (rebalance_date, autocorrelation, n).
    """
    return rank_autocorrelation_long(_single(factor_frame, factor_col))

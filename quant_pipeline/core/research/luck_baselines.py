"""Is it luck? Random-portfolio baselines and a perfect-foresight bound.

A strategy's result means little alone. Here it is set against (a) many random portfolios drawn
under the same universe, size, sector cap and schedule, and (b) the best portfolio the same
constraints allow with perfect knowledge of the next period (an upper bound, not a strategy).

Frames::

    eligible:  rebalance_date | ticker | sector            (the strategy's eligible names on D)
    fwd:       rebalance_date | ticker | forward_return
               (from core.research.factor_diagnostics.forward_returns)
    weights:   [portfolio_id |] rebalance_date | ticker | sector | weight

Random draws use numpy's PCG64 generator with the given seed: the same inputs and seed give the
same portfolios. Forward returns are labels: only the oracle reads them, to set an upper bound.
The probabilistic Sharpe ratio of the luck table is core.backtest.metrics.probabilistic_sharpe_ratio
(one definition, the one of backtest.metrics).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np
import polars as pl

from quant_pipeline.core.data.frames import require_columns

_D = "rebalance_date"
_ROWS_PER_BLOCK = 4_000_000  # bounds memory: portfolios are drawn in blocks of about this size


def _max_per_sector(n_names: int, sector_cap: float | None) -> int:
    if isinstance(n_names, bool) or not isinstance(n_names, int) or n_names < 1:
        raise ValueError(f"parameter 'n_names' must be an integer >= 1, got {n_names!r}")
    if sector_cap is None:
        return n_names
    if not (isinstance(sector_cap, (int, float)) and 0 < sector_cap <= 1):
        raise ValueError(f"parameter 'sector_cap' must be in (0, 1] or None, got {sector_cap!r}")
    # with equal weights a cap on a sector's weight is a cap on its number of names
    return max(1, math.floor(sector_cap * n_names + 1e-9))


def _eligible(eligible: pl.DataFrame) -> pl.DataFrame:
    """Unique (date, ticker) rows plus integer group keys: ``_gd`` per date, ``_gs`` per
    (date, sector). Windows over one integer column are several times faster than over three."""
    require_columns(eligible, (_D, "ticker", "sector"), "eligible")
    frame = (
        eligible.select(_D, "ticker", pl.col("sector").fill_null("Unknown"))
        .unique([_D, "ticker"], keep="first")
        .sort(_D, "ticker")
    )
    n_sectors = max(frame["sector"].n_unique(), 1)
    gd = pl.col(_D).rank("dense").cast(pl.Int64)
    return frame.with_columns(
        _gd=gd, _gs=gd * n_sectors + pl.col("sector").rank("dense").cast(pl.Int64)
    )


def _take_top(frame: pl.DataFrame, key: str, n_names: int, per_sector: int) -> pl.DataFrame:
    """Keep the highest ``key`` names per ``_gd`` group, at most ``per_sector`` per ``_gs``
    (sector) group; equal weights within the ``_gd`` group.

    Best-first under a per-sector count limit is also the optimum of "largest sum of keys with at
    most n names and per_sector per sector" (a matroid, where greedy is exact): the oracle uses it.
    """
    k = pl.col(key)
    return (
        frame.filter(k.rank("ordinal", descending=True).over("_gs") <= per_sector)
        .filter(k.rank("ordinal", descending=True).over("_gd") <= n_names)
        .with_columns(weight=1.0 / pl.len().over("_gd"))
        .drop(key, "_gd", "_gs")
    )


_TIE_BITS = 23  # low bits of a random key hold the name's column: keys are distinct (< 8M names)


def _by_date_and_sector(eligible: pl.DataFrame) -> pl.DataFrame:
    """Unique (date, ticker) rows, a null sector as "Unknown", sorted by date, sector, ticker:
    each date's names are one contiguous block and each sector a contiguous run inside it."""
    require_columns(eligible, (_D, "ticker", "sector"), "eligible")
    return (
        eligible.select(_D, "ticker", pl.col("sector").fill_null("Unknown"))
        .unique([_D, "ticker"], keep="first")
        .sort(_D, "sector", "ticker")
    )


def _starts(codes: np.ndarray) -> np.ndarray:
    """Offsets where each run of equal values in ``codes`` starts, plus len(codes) at the end."""
    change = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    return np.concatenate(([0], change, [codes.size])).astype(np.int64)


def _draws(
    base: pl.DataFrame, n_names: int, per_sector: int, n_portfolios: int, seed: int
) -> Iterator[tuple[int, int, np.ndarray]]:
    """For each date block ``base[lo:hi]`` (from :func:`_by_date_and_sector`): a boolean
    (n_portfolios x names) matrix, True where a random portfolio holds the name on that date.

    Each portfolio gives every name of the date a uniformly random key (random high bits, the
    name's column in the low bits, so keys never tie) and keeps the highest keys, at most
    ``per_sector`` per sector and ``n_names`` in all: within each sector the keys at or above
    its ``per_sector``-th largest, then, if more than ``n_names`` are left, the ones at or above
    the ``n_names``-th largest of those. That is drawing names one by one without replacement,
    skipping full sectors. Keys are drawn date by date and portfolio by portfolio (at most about
    ``_ROWS_PER_BLOCK`` cells at a time), so the block size does not change the stream.
    """
    if base.is_empty():
        return
    rng = np.random.default_rng(seed)
    dates = _starts(base[_D].to_physical().to_numpy())
    sectors = base["sector"].rank("dense").to_numpy()
    for lo, hi in zip(dates[:-1], dates[1:], strict=True):
        m = int(hi - lo)
        runs = _starts(sectors[lo:hi])
        # a cap of n_names or more never binds: the n_names best hold at most n_names per sector
        capped = [
            (int(a), int(b))
            for a, b in zip(runs[:-1], runs[1:], strict=True)
            if b - a > per_sector and per_sector < n_names
        ]
        n_kept = m - sum(b - a - per_sector for a, b in capped)  # names left after the cap
        column = np.arange(m, dtype=np.int64)
        held = np.empty((n_portfolios, m), dtype=bool)
        step = max(1, _ROWS_PER_BLOCK // m)
        for p0 in range(0, n_portfolios, step):
            p1 = min(p0 + step, n_portfolios)
            keys = (rng.integers(0, 1 << (63 - _TIE_BITS), (p1 - p0, m)) << _TIE_BITS) | column
            if not capped:
                keep = np.ones(keys.shape, dtype=bool)
                survivors = keys
            else:
                # per capped sector, its per_sector highest keys survive; uncapped sectors whole
                keep = np.empty(keys.shape, dtype=bool)
                survivors, done = [], 0
                for a, b in capped:
                    if a > done:
                        keep[:, done:a] = True
                        survivors.append(keys[:, done:a])
                    top = np.partition(keys[:, a:b], (b - a) - per_sector, axis=1)
                    top = top[:, (b - a) - per_sector :]
                    keep[:, a:b] = keys[:, a:b] >= top.min(axis=1, keepdims=True)
                    survivors.append(top)
                    done = b
                if done < m:
                    keep[:, done:] = True
                    survivors.append(keys[:, done:])
                survivors = np.concatenate(survivors, axis=1)
            if n_kept > n_names:
                # the n_names-th highest survivor is the cut (keys are distinct: exactly n_names)
                kth = n_kept - n_names
                cut = np.partition(survivors, kth, axis=1)[:, kth]
                keep &= keys >= cut[:, None]
            held[p0:p1] = keep
        yield int(lo), int(hi), held


def _check_n_portfolios(n_portfolios: int) -> None:
    if isinstance(n_portfolios, bool) or not isinstance(n_portfolios, int) or n_portfolios < 1:
        raise ValueError(f"parameter 'n_portfolios' must be an integer >= 1, got {n_portfolios!r}")


def random_portfolios(
    eligible: pl.DataFrame,
    n_names: int,
    sector_cap: float | None,
    n_portfolios: int = 200,
    seed: int = 0,
) -> pl.DataFrame:
    """Random equal-weight portfolios under the strategy's size and sector cap, per date.

    ``eligible``: (rebalance_date, ticker, sector) — the names the strategy could pick on D (a
    null sector counts as "Unknown"). ``sector_cap``: the largest weight one sector may take,
    i.e. at most floor(sector_cap x n_names) names (at least 1) per sector; None = no cap.
    Each (portfolio, date, ticker) gets a uniform random key; per (portfolio, date) the names
    with the highest keys are kept, at most the cap per sector, at most ``n_names`` in all —
    the same as drawing names one by one without replacement, skipping full sectors. When the
    universe or the cap allows fewer than ``n_names``, the portfolio holds what it can, equally.
    Draws are independent across dates (no holding period). Reproducible for a seed; the same
    draws as :func:`random_period_returns` with the same arguments.

    Returns (portfolio_id, rebalance_date, ticker, sector, weight), portfolio_id in
    0..n_portfolios-1, sorted.
    """
    per_sector = _max_per_sector(n_names, sector_cap)
    _check_n_portfolios(n_portfolios)
    base = _by_date_and_sector(eligible)
    schema = {"portfolio_id": pl.Int64, **base.schema, "weight": pl.Float64}
    parts = []
    for lo, hi, held in _draws(base, n_names, per_sector, n_portfolios, seed):
        pid, col = np.nonzero(held)
        parts.append(
            base.slice(lo, hi - lo)
            .select(pl.all().gather(col))
            .with_columns(
                portfolio_id=pl.Series(pid, dtype=pl.Int64),
                weight=pl.Series(1.0 / held.sum(axis=1)[pid]),
            )
            .select(list(schema))
        )
    if not parts:
        return pl.DataFrame(schema=schema)
    return pl.concat(parts).sort("portfolio_id", _D, "ticker")


def random_period_returns(
    eligible: pl.DataFrame,
    fwd: pl.DataFrame,
    n_names: int,
    sector_cap: float | None,
    n_portfolios: int = 200,
    seed: int = 0,
) -> pl.DataFrame:
    """``fast_period_returns(random_portfolios(eligible, ...), fwd)`` without building the
    weights frame: per date, the (portfolios x names) holdings matrix times the names' forward
    returns, divided by each portfolio's number of names (a name without a forward return
    counts as cash, 0). Same draws as :func:`random_portfolios` for the same arguments.

    Returns (portfolio_id, rebalance_date, period_return) sorted.
    """
    per_sector = _max_per_sector(n_names, sector_cap)
    _check_n_portfolios(n_portfolios)
    require_columns(fwd, (_D, "ticker", "forward_return"), "forward returns")
    base = _by_date_and_sector(eligible)
    r = (
        base.join(fwd.select(_D, "ticker", "forward_return"), on=[_D, "ticker"], how="left")
        .select(pl.col("forward_return").cast(pl.Float64).fill_null(0.0))
        .to_series()
        .to_numpy()
    )
    day = base[_D]
    ids, dates, returns = [], [], []
    for lo, hi, held in _draws(base, n_names, per_sector, n_portfolios, seed):
        ids.append(np.arange(n_portfolios, dtype=np.int64))
        dates.append(np.full(n_portfolios, lo))
        returns.append((held.astype(np.float64) @ r[lo:hi]) / held.sum(axis=1))
    schema = {"portfolio_id": pl.Int64, _D: pl.Date, "period_return": pl.Float64}
    if not ids:
        return pl.DataFrame(schema=schema)
    return pl.DataFrame(
        {
            "portfolio_id": np.concatenate(ids),
            _D: day.gather(np.concatenate(dates)),
            "period_return": np.concatenate(returns),
        },
        schema=schema,
    ).sort("portfolio_id", _D)


def oracle_portfolio(
    eligible: pl.DataFrame, fwd: pl.DataFrame, n_names: int, sector_cap: float | None
) -> pl.DataFrame:
    """Perfect foresight: on each date the names with the best forward returns, same constraints.

    Same size and sector cap as :func:`random_portfolios`; names without a forward return are
    left out. It reads the future on purpose: an upper bound on what any selection of
    ``n_names`` equal-weight names could have earned, never a strategy.
    Returns (rebalance_date, ticker, sector, weight, forward_return).
    """
    per_sector = _max_per_sector(n_names, sector_cap)
    require_columns(fwd, (_D, "ticker", "forward_return"), "forward returns")
    frame = (
        _eligible(eligible)
        .join(fwd.select(_D, "ticker", "forward_return"), on=[_D, "ticker"], how="inner")
        .filter(pl.col("forward_return").is_finite())
        .with_columns(_key=pl.col("forward_return"))
    )
    return (
        _take_top(frame, "_key", n_names, per_sector)
        .select(_D, "ticker", "sector", "weight", "forward_return")
        .sort(_D, "ticker")
    )


def fast_period_returns(weights: pl.DataFrame, fwd: pl.DataFrame) -> pl.DataFrame:
    """Each portfolio's return over each rebalance period: sum of weight x forward return.

    ``weights``: (rebalance_date, ticker, weight[, portfolio_id]); ``fwd`` as from
    core.research.factor_diagnostics.forward_returns. This is exact, not an approximation, for a
    portfolio bought at D's close and held untouched until the next rebalance date: its value grows
    from 1 to sum_i w_i (1 + r_i), so its period return is sum_i w_i r_i (the mean of its names'
    returns with equal weights) — intra-period drift of the weights does not change it. Costs are
    not included. A name with no forward return counts as cash (0). Without ``portfolio_id`` the
    frame is one portfolio. Returns ([portfolio_id,] rebalance_date, period_return) sorted.
    """
    require_columns(weights, (_D, "ticker", "weight"), "weights")
    require_columns(fwd, (_D, "ticker", "forward_return"), "forward returns")
    group = (["portfolio_id"] if "portfolio_id" in weights.columns else []) + [_D]
    return (
        weights.join(fwd.select(_D, "ticker", "forward_return"), on=[_D, "ticker"], how="left")
        .group_by(group)
        .agg(
            (pl.col("weight") * pl.col("forward_return").fill_null(0.0))
            .sum()
            .alias("period_return")
        )
        .sort(group)
    )


def portfolio_summary(period_returns: pl.DataFrame, periods_per_year: float) -> pl.DataFrame:
    """CAGR and annualised Sharpe (risk-free 0) per portfolio from :func:`fast_period_returns`.

    cagr = prod(1 + r)^(periods_per_year / n) - 1; sharpe = mean(r) / std(r, ddof=1) x
    sqrt(periods_per_year). Returns ([portfolio_id,] n_periods, cagr, sharpe).
    """
    require_columns(period_returns, ("period_return",), "period returns")
    if periods_per_year <= 0:
        raise ValueError(f"parameter 'periods_per_year' must be > 0, got {periods_per_year!r}")
    r = pl.col("period_return")
    aggs = [
        pl.len().cast(pl.Int64).alias("n_periods"),
        ((1.0 + r).log().sum() * periods_per_year / pl.len()).exp().sub(1.0).alias("cagr"),
        (r.mean() / r.std(ddof=1) * math.sqrt(periods_per_year)).alias("sharpe"),
    ]
    if "portfolio_id" in period_returns.columns:
        return period_returns.group_by("portfolio_id").agg(aggs).sort("portfolio_id")
    return period_returns.select(aggs)


def percentile_of(value: float, distribution: Iterable[float]) -> float:
    """Percentile (0-100) of ``value`` within ``distribution``: share below, ties counted half.

    100 x (#{x < value} + 0.5 x #{x == value}) / n, over the finite values of the distribution
    (scipy's ``percentileofscore(kind="mean")``). Raises ValueError on an empty distribution.
    """
    x = np.asarray(list(distribution), dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        raise ValueError("percentile_of: the distribution has no finite values")
    return float(100.0 * ((x < value).sum() + 0.5 * (x == value).sum()) / x.size)

"""Research tables: factor diagnostics for many factors, and "is it luck?" for a strategy.

Assembles the single-factor tools of :mod:`core.research.factor_diagnostics` and
:mod:`core.research.luck_baselines` into the tables the research assets write. Forward returns
(``core.research.factor_diagnostics.forward_returns``) are labels: they are joined to factor values
and portfolios here only to judge them.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import polars as pl

from quant_pipeline.core.backtest.metrics import probabilistic_sharpe_ratio
from quant_pipeline.core.data.calendar import TRADING_DAYS_PER_YEAR
from quant_pipeline.core.data.frames import require_columns
from quant_pipeline.core.research import factor_diagnostics as dx
from quant_pipeline.core.research import luck_baselines as luck

_D = "rebalance_date"
PERIODS_PER_YEAR = {"monthly": 12.0, "quarterly": 4.0, "annual": 1.0}

IC_SCHEMA: dict[str, pl.DataType] = {
    "factor": pl.String(),
    "rebalance_date": pl.Date(),
    "ic": pl.Float64(),
    "n": pl.Int64(),
    "spread": pl.Float64(),
    "turnover": pl.Float64(),
    "rank_autocorrelation": pl.Float64(),
}
QUANTILES_SCHEMA: dict[str, pl.DataType] = {
    "factor": pl.String(),
    "rebalance_date": pl.Date(),
    "quantile": pl.Int32(),
    "mean_forward_return": pl.Float64(),
    "n": pl.Int64(),
}
# A date enters an average only when this many names have both a factor value and a forward
# return: with 2 names a Spearman IC is exactly +1 or -1, and a handful of such dates moves the
# mean IC more than years of full cross-sections.
MIN_CROSS_SECTION = 20
# Factors are stacked long in batches of at most this many rows (factor values x factors): about
# 0.6 GB of working memory each at ~150 bytes a row, instead of every factor at once (13M rows
# and 2 GB at 3,000 tickers x 20 years).
LONG_ROWS_PER_BATCH = 4_000_000
SUMMARY_SCHEMA: dict[str, pl.DataType] = {
    "factor": pl.String(),
    "n_periods": pl.Int64(),
    "mean_ic": pl.Float64(),
    "ic_std": pl.Float64(),
    "ic_t_stat": pl.Float64(),
    "hit_rate": pl.Float64(),
    "mean_spread": pl.Float64(),
    "spread_dates": pl.Int64(),
    "bottom_quantile_return": pl.Float64(),
    "top_quantile_return": pl.Float64(),
    "quantile_dates": pl.Int64(),
    "mean_turnover": pl.Float64(),
    "turnover_dates": pl.Int64(),
    "mean_rank_autocorrelation": pl.Float64(),
    "autocorrelation_dates": pl.Int64(),
    "min_names": pl.Int64(),
    "small_dates_excluded": pl.Int64(),
}
LUCK_SCHEMA: dict[str, pl.DataType] = {
    "strategy": pl.String(),
    "n_periods": pl.Int64(),
    "n_portfolios": pl.Int64(),
    "seed": pl.Int64(),
    "sharpe": pl.Float64(),
    "cagr": pl.Float64(),
    "random_sharpe_p05": pl.Float64(),
    "random_sharpe_median": pl.Float64(),
    "random_sharpe_p95": pl.Float64(),
    "sharpe_percentile": pl.Float64(),
    "random_cagr_median": pl.Float64(),
    "cagr_percentile": pl.Float64(),
    "oracle_sharpe": pl.Float64(),
    "oracle_cagr": pl.Float64(),
    "probabilistic_sharpe_ratio": pl.Float64(),
}


def factor_diagnostics(
    factor_frame: pl.DataFrame,
    fwd: pl.DataFrame,
    factors: Iterable[str],
    quantiles: int = 5,
    min_names: int = MIN_CROSS_SECTION,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """IC, quantile returns, spread, turnover and rank autocorrelation for each factor.

    ``factor_frame``: (rebalance_date, ticker, <factor columns>) over the universe to judge;
    ``fwd``: (rebalance_date, ticker, forward_return). Higher factor value = expected higher
    return (the sign of a lower-is-better factor's IC is negative). A factor with no finite value
    joined to a forward return is left out of every table.

    Returns (per_date, quantiles, summary) in IC_SCHEMA, QUANTILES_SCHEMA and SUMMARY_SCHEMA:
    per factor and date ic (Spearman), n, the top-minus-bottom spread, the top quantile's
    turnover and the rank autocorrelation; per factor, date and quantile the mean forward return;
    per factor the IC mean, std, t-stat and hit rate and the means of the other columns.

    Research hygiene: the per-date tables keep every date (with its cross-section size ``n``),
    but a date enters the summary's averages only when ``n >= min_names`` (default
    ``MIN_CROSS_SECTION`` = 20; ``n`` = names with both a finite factor value and a forward
    return). Beside every average the summary gives the number of dates it used
    (``n_periods`` for the IC statistics, ``spread_dates``, ``quantile_dates``,
    ``turnover_dates``, ``autocorrelation_dates``), ``min_names`` and how many dates with an IC
    were left out for being smaller (``small_dates_excluded``).
    """
    if isinstance(min_names, bool) or not isinstance(min_names, int) or min_names < 2:
        raise ValueError(f"min_names must be an integer >= 2 (names per date), got {min_names!r}")
    factors = list(dict.fromkeys(factors))
    parts = [
        _per_date_and_quantile(factor_frame.select(_D, "ticker", *batch), fwd, batch, quantiles)
        for batch in factor_batches(factors, factor_frame.height, LONG_ROWS_PER_BATCH)
    ]
    per_date = pl.concat([p[0] for p in parts]).sort("factor", _D)
    per_quantile = pl.concat([p[1] for p in parts]).sort("factor", _D, "quantile")
    summary = _factor_summary(per_date, per_quantile, factors, quantiles, min_names)
    return per_date, per_quantile, summary


def factor_batches(
    factors: list[str], rows: int, long_rows: int = LONG_ROWS_PER_BATCH
) -> list[list[str]]:
    """``factors`` in consecutive batches of at most ``long_rows`` stacked rows (``rows`` per
    factor; at least one factor a batch, one batch for none). Every statistic is per factor,
    so batches give the same rows as one pass; they bound the long frame's memory."""
    size = max(1, long_rows // max(rows, 1))
    return [factors[i : i + size] for i in range(0, len(factors), size)] or [[]]


def _per_date_and_quantile(
    factor_frame: pl.DataFrame, fwd: pl.DataFrame, factors: list[str], quantiles: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The IC_SCHEMA and QUANTILES_SCHEMA tables, factors named, factors without an IC left out."""
    # Every factor in one long frame, so each rank, quantile and join is one polars pass over
    # (factor, rebalance_date) groups instead of one pass per factor.
    by = ("factor",)
    values = dx.long_values(factor_frame, factors)
    joined = dx.long_joined(factor_frame, factors, fwd)
    joined = dx.ranked_long(joined, quantiles, by)
    ic = dx.ic_long(joined, by)
    # a factor with no IC at all (no finite value joined to a return) is left out everywhere
    kept = ic.filter(pl.col("ic").is_not_null())["factor"].unique()
    ic = ic.filter(pl.col("factor").is_in(kept.implode()))
    q = dx.quantile_returns_long(joined, quantiles, by).filter(
        pl.col("factor").is_in(kept.implode())
    )
    values = dx.lagged_long(values.filter(pl.col("factor").is_in(kept.implode())), quantiles, by)
    spread = dx.top_minus_bottom_long(q, by).select(*by, _D, "spread")
    turnover = dx.turnover_long(values, quantiles, by=by)
    autocorr = dx.rank_autocorrelation_long(values, by).select(
        *by, _D, pl.col("autocorrelation").alias("rank_autocorrelation")
    )
    names = pl.DataFrame(
        {"_name": factors, "factor": range(len(factors))}, schema_overrides={"factor": pl.Int32}
    )
    per_date = (
        ic.join(spread, on=[*by, _D], how="left")
        .join(turnover, on=[*by, _D], how="left")
        .join(autocorr, on=[*by, _D], how="left")
        .join(names, on="factor")
        .with_columns(factor=pl.col("_name"))
        .select([pl.col(c).cast(t) for c, t in IC_SCHEMA.items()])
        .sort("factor", _D)
    )
    per_quantile = (
        q.join(names, on="factor")
        .with_columns(factor=pl.col("_name"))
        .select([pl.col(c).cast(t) for c, t in QUANTILES_SCHEMA.items()])
        .sort("factor", _D, "quantile")
    )
    return per_date, per_quantile


def _factor_summary(
    per_date: pl.DataFrame,
    per_quantile: pl.DataFrame,
    factors: list[str],
    quantiles: int,
    min_names: int,
) -> pl.DataFrame:
    """One SUMMARY_SCHEMA row per factor of ``per_date``, in the order of ``factors``, over the
    dates whose cross-section has at least ``min_names`` names."""
    large = per_date.filter(pl.col("n") >= min_names)
    dates_by_factor = large.partition_by("factor", as_dict=True)
    quantiles_by_factor = per_quantile.join(
        large.select("factor", _D), on=["factor", _D], how="semi"
    ).partition_by("factor", as_dict=True)
    with_ic = per_date.filter(pl.col("ic").is_not_null())
    excluded = dict(with_ic.filter(pl.col("n") < min_names).group_by("factor").len().iter_rows())
    summary = []
    for factor in factors:
        if factor not in set(with_ic["factor"]):
            continue
        rows = dates_by_factor.get((factor,), large.clear())
        s = dx.ic_summary(rows)
        by_q = (
            quantiles_by_factor.get((factor,), per_quantile.clear())
            .group_by("quantile")
            .agg(pl.col("mean_forward_return").mean())
        )
        summary.append(
            {
                "factor": factor,
                "n_periods": s["n_periods"],
                "mean_ic": s["mean"],
                "ic_std": s["std"],
                "ic_t_stat": s["t_stat"],
                "hit_rate": s["hit_rate"],
                "mean_spread": rows["spread"].mean(),
                "spread_dates": rows["spread"].drop_nulls().len(),
                "bottom_quantile_return": _first(by_q.filter(pl.col("quantile") == 1)),
                "top_quantile_return": _first(by_q.filter(pl.col("quantile") == quantiles)),
                "quantile_dates": quantiles_by_factor.get((factor,), per_quantile.clear())[
                    _D
                ].n_unique(),
                "mean_turnover": rows["turnover"].mean(),
                "turnover_dates": rows["turnover"].drop_nulls().len(),
                "mean_rank_autocorrelation": rows["rank_autocorrelation"].mean(),
                "autocorrelation_dates": rows["rank_autocorrelation"].drop_nulls().len(),
                "min_names": min_names,
                "small_dates_excluded": excluded.get(factor, 0),
            }
        )
    return pl.DataFrame(summary, schema=SUMMARY_SCHEMA)


def _first(frame: pl.DataFrame) -> float | None:
    return None if frame.is_empty() else frame["mean_forward_return"][0]


def luck_report(
    name: str,
    eligible: pl.DataFrame,
    weights: pl.DataFrame,
    fwd: pl.DataFrame,
    n_names: int,
    sector_cap: float | None,
    periods_per_year: float,
    *,
    daily_returns: Iterable[float] | None = None,
    n_portfolios: int = 200,
    seed: int = 0,
) -> tuple[dict[str, object], pl.DataFrame]:
    """Set a strategy against random portfolios and the perfect-foresight bound.

    ``eligible``: (rebalance_date, ticker, sector) the names the strategy could pick;
    ``weights``: its target weights (rebalance_date, ticker, weight); ``fwd``: forward returns
    on the same schedule. Only dates with both weights and forward returns count (the last
    rebalance has no label). The strategy, ``n_portfolios`` random portfolios (same size and
    sector cap, seeded) and the oracle are all scored the same way: period return = sum of
    weight x forward return, no costs (core.research.luck_baselines.fast_period_returns;
    random_period_returns for the random ones, the same draws as random_portfolios without the
    weights frame), so the percentiles compare like with like. ``daily_returns`` (the
    backtest's, net of costs: every day of ``backtest.daily``, the first one included, nulls
    and NaN dropped) give the probabilistic Sharpe ratio against 0 —
    core.backtest.metrics.probabilistic_sharpe_ratio, the same function and series as the
    ``probabilistic_sharpe_ratio`` row of ``backtest.metrics``.

    Returns (one LUCK_SCHEMA row as a dict, the random portfolios' (portfolio_id, n_periods,
    cagr, sharpe)).
    """
    dates = (
        weights.select(_D)
        .unique()
        .join(fwd.select(_D).unique(), on=_D, how="semi")
        .join(eligible.select(_D).unique(), on=_D, how="semi")
    )
    if dates.is_empty():
        raise ValueError(f"{name}: no rebalance date has weights, eligible names and labels")
    elig = eligible.join(dates, on=_D, how="semi")
    label = fwd.join(dates, on=_D, how="semi")
    own = luck.portfolio_summary(
        luck.fast_period_returns(weights.join(dates, on=_D, how="semi"), label), periods_per_year
    )
    random = luck.portfolio_summary(
        luck.random_period_returns(elig, label, n_names, sector_cap, n_portfolios, seed),
        periods_per_year,
    )
    oracle = luck.portfolio_summary(
        luck.fast_period_returns(luck.oracle_portfolio(elig, label, n_names, sector_cap), label),
        periods_per_year,
    )
    sharpe, cagr = own["sharpe"][0], own["cagr"][0]
    rs = random["sharpe"].drop_nulls().drop_nans().to_numpy()
    rc = random["cagr"].drop_nulls().drop_nans().to_numpy()
    row = {
        "strategy": name,
        "n_periods": int(own["n_periods"][0]),
        "n_portfolios": n_portfolios,
        "seed": seed,
        "sharpe": sharpe,
        "cagr": cagr,
        "random_sharpe_p05": _q(rs, 0.05),
        "random_sharpe_median": _q(rs, 0.5),
        "random_sharpe_p95": _q(rs, 0.95),
        "sharpe_percentile": _percentile(sharpe, rs),
        "random_cagr_median": _q(rc, 0.5),
        "cagr_percentile": _percentile(cagr, rc),
        "oracle_sharpe": oracle["sharpe"][0],
        "oracle_cagr": oracle["cagr"][0],
        "probabilistic_sharpe_ratio": (
            None
            if daily_returns is None
            else probabilistic_sharpe_ratio(
                pl.Series(list(daily_returns), dtype=pl.Float64).drop_nulls().drop_nans()
            )
        ),
    }
    return row, random


def _percentile(value: float | None, distribution: np.ndarray) -> float | None:
    if value is None or not np.isfinite(value) or distribution.size == 0:
        return None
    return luck.percentile_of(value, distribution)


def _q(x: np.ndarray, q: float) -> float | None:
    return float(np.quantile(x, q)) if x.size else None


SIGNAL_COUNTS_SCHEMA: dict[str, pl.DataType] = {
    "strategy": pl.String(),
    "year": pl.Int32(),
    "entries": pl.Int64(),
    "exits": pl.Int64(),
    "tickers_entered": pl.Int64(),
    "ticker_years": pl.Float64(),
    "entries_per_100_ticker_years": pl.Float64(),
}


def signal_counts(events: pl.DataFrame, prices: pl.DataFrame) -> pl.DataFrame:
    """How often each signal strategy fired, per calendar year (``research.signal_counts``).

    ``events``: factors.signal_events (strategy, ticker, date, entry, exit: an entry row per day
    the entry fires, an exit row per day an exit condition starts). ``prices``: curated.prices
    (ticker, date), for the exposure: ``ticker_years`` = price rows of the year / 252. Returns
    SIGNAL_COUNTS_SCHEMA: entries, exits, distinct tickers with an entry, and entries per 100
    ticker-years (null without prices that year), every strategy x year with a price row (0 when
    the strategy did not fire), sorted by strategy and year.
    """
    require_columns(events, ("strategy", "ticker", "date", "entry", "exit"), "signal_events")
    require_columns(prices, ("ticker", "date"), "curated.prices")
    year = pl.col("date").dt.year().cast(pl.Int32).alias("year")
    # lazily: the engine groups 14M price rows several times faster than the eager group_by
    exposure = (
        prices.lazy()
        .group_by(year)
        .agg((pl.len() / TRADING_DAYS_PER_YEAR).alias("ticker_years"))
        .collect()
    )
    fired = events.group_by("strategy", year).agg(
        pl.col("entry").sum().cast(pl.Int64).alias("entries"),
        pl.col("exit").sum().cast(pl.Int64).alias("exits"),
        pl.col("ticker").filter(pl.col("entry")).n_unique().cast(pl.Int64).alias("tickers_entered"),
    )
    grid = events.select("strategy").unique().join(exposure.select("year"), how="cross")
    return (
        grid.join(fired, on=["strategy", "year"], how="full", coalesce=True)
        .join(exposure, on="year", how="left")
        .with_columns(pl.col("entries", "exits", "tickers_entered").fill_null(0))
        .with_columns(
            (100.0 * pl.col("entries") / pl.col("ticker_years")).alias(
                "entries_per_100_ticker_years"
            )
        )
        .select([pl.col(c).cast(t) for c, t in SIGNAL_COUNTS_SCHEMA.items()])
        .sort("strategy", "year")
    )

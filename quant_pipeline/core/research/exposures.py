"""Exposures of a strategy's target weights per rebalance date: beta, sectors, style tilts.

All point in time: on rebalance date D only D's rows of factors.values (themselves built from
data before D) and returns dated before D are read.

* ``beta`` (ex ante): Σ w_i β_i / Σ_{i with β} w_i, β_i = cov(r_i, r_b) / var(r_b) (sample, over
  the days of the last ``lookback`` price dates before D where both returns exist, at least
  ``min_history``); ``beta_coverage`` = the weight share of names with a β.
* ``*_tilt``: Σ w_i z_i over the held names with a value, z the cross-sectional z-score (sample
  std) over D's in-universe names with a value; size = ln(market_cap), value = earnings_yield,
  momentum = momentum_12_1, quality = the mean of the z-scores of roe, roa, gross_margin and
  −debt_to_equity a name has. A tilt of 0.5 = the book sits half a standard deviation above the
  universe's average name.
* sector exposure: the book's weight per sector beside the universe's market-cap weight
  (in-universe names with a market cap on D); active = portfolio − universe.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from quant_pipeline.core.data.calendar import TRADING_DAYS_PER_YEAR
from quant_pipeline.core.strategies.weighting import PriceHistory

BY = "rebalance_date"
QUALITY_PARTS: dict[str, int] = {"roe": 1, "roa": 1, "gross_margin": 1, "debt_to_equity": -1}


def _cross_sectional_z(column: str) -> pl.Expr:
    """z-score over D's rows; null where the column has no spread that day (a constant part
    says nothing about quality and must not turn the mean into NaN)."""
    x = pl.col(column)
    std = x.std(ddof=1).over(BY)
    return pl.when(std > 0).then((x - x.mean().over(BY)) / std)


STYLES: dict[str, pl.Expr] = {
    "size": pl.col("market_cap").log(),
    "value": pl.col("earnings_yield"),
    "momentum": pl.col("momentum_12_1"),
    # profitability and low leverage: the mean of the z-scores a name has (over D's rows)
    "quality": pl.mean_horizontal(
        [sign * _cross_sectional_z(c) for c, sign in QUALITY_PARTS.items()]
    ),
}
STYLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "size": ("market_cap",),
    "value": ("earnings_yield",),
    "momentum": ("momentum_12_1",),
    "quality": tuple(QUALITY_PARTS),
}


def style_values(values: pl.DataFrame) -> pl.DataFrame:
    """rebalance_date, ticker, sector and one column per style (:data:`STYLES`) over D's
    in-universe rows of factors.values; a style whose inputs the frame lacks is null. The
    quality style's z-scores are taken over the same in-universe rows."""
    universe = values.filter(pl.col("in_universe").fill_null(False))
    present = set(universe.columns)
    return universe.select(
        BY,
        "ticker",
        "sector",
        *[
            (e if set(STYLE_COLUMNS[n]) <= present else pl.lit(None, pl.Float64)).alias(n)
            for n, e in STYLES.items()
        ],
    )


def style_tilts(weights: pl.DataFrame, values: pl.DataFrame) -> pl.DataFrame:
    """strategy, rebalance_date, n_names, size_tilt, value_tilt, momentum_tilt, quality_tilt."""
    universe = style_values(values).drop("sector")
    z = universe.with_columns(
        [
            ((pl.col(n) - pl.col(n).mean().over(BY)) / pl.col(n).std(ddof=1).over(BY)).alias(n)
            for n in STYLES
        ]
    )
    held = weights.select("strategy", BY, "ticker", "weight").join(z, on=[BY, "ticker"], how="left")
    return (
        held.group_by("strategy", BY)
        .agg(
            pl.len().alias("n_names"),
            *[
                (pl.col("weight") * pl.col(n))
                .filter(pl.col(n).is_finite())
                .sum()
                .alias(f"{n}_tilt")
                for n in STYLES
            ],
        )
        .sort("strategy", BY)
    )


def sector_exposures(weights: pl.DataFrame, values: pl.DataFrame) -> pl.DataFrame:
    """strategy, rebalance_date, sector, portfolio_weight, universe_weight, active_weight."""
    universe = (
        values.filter(pl.col("in_universe").fill_null(False) & pl.col("market_cap").is_not_null())
        .with_columns(sector=pl.col("sector").fill_null("<unknown>"))
        .group_by(BY, "sector")
        .agg(pl.col("market_cap").sum())
        .with_columns(universe_weight=pl.col("market_cap") / pl.col("market_cap").sum().over(BY))
        .drop("market_cap")
    )
    book = (
        weights.with_columns(sector=pl.col("sector").fill_null("<unknown>"))
        .group_by("strategy", BY, "sector")
        .agg(pl.col("weight").sum().alias("portfolio_weight"))
    )
    dates = book.select("strategy", BY).unique()
    grid = dates.join(universe.select(BY, "sector"), on=BY, how="left")
    both = pl.concat([grid, book.select("strategy", BY, "sector")]).unique()
    return (
        both.join(book, on=["strategy", BY, "sector"], how="left")
        .join(universe, on=[BY, "sector"], how="left")
        .with_columns(pl.col("portfolio_weight", "universe_weight").fill_null(0.0))
        .with_columns(active_weight=pl.col("portfolio_weight") - pl.col("universe_weight"))
        .sort("strategy", BY, "sector")
    )


def ex_ante_beta(
    weights: pl.DataFrame,
    history: PriceHistory,
    benchmark: pl.DataFrame,
    lookback: int = TRADING_DAYS_PER_YEAR,
    min_history: int = 60,
) -> pl.DataFrame:
    """strategy, rebalance_date, beta, beta_coverage (returns strictly before each date).

    ``benchmark``: date, benchmark_return (the return dated t, as ``backtest.benchmarks``).
    """
    bench = dict(benchmark.select("date", "benchmark_return").iter_rows())
    rows = []
    for (strategy, d), day in weights.group_by("strategy", BY, maintain_order=True):
        tickers = day["ticker"].to_list()
        rets, _ = history.returns_before(d, tickers, lookback)
        end = int(np.searchsorted(history.dates, np.datetime64(d), side="left"))
        days = history.dates[max(0, end - lookback - 1) + 1 : end]  # the dates of ``rets``
        b = np.array([bench.get(x.astype("datetime64[D]").item(), np.nan) for x in days])
        w = day["weight"].to_numpy()
        betas = np.full(len(tickers), np.nan)
        for j in range(len(tickers)):
            ok = np.isfinite(rets[:, j]) & np.isfinite(b) if rets.size else np.zeros(0, bool)
            if ok.sum() >= min_history and np.var(b[ok], ddof=1) > 0:
                betas[j] = np.cov(rets[ok, j], b[ok], ddof=1)[0, 1] / np.var(b[ok], ddof=1)
        has = np.isfinite(betas)
        cover = float(w[has].sum())
        beta = float((w[has] * betas[has]).sum() / cover) if cover > 0 else math.nan
        rows.append((strategy, d, None if math.isnan(beta) else beta, cover))
    return pl.DataFrame(
        rows,
        schema={
            "strategy": pl.String,
            BY: pl.Date,
            "beta": pl.Float64,
            "beta_coverage": pl.Float64,
        },
        orient="row",
    )

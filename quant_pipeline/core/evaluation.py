"""Metrics for every strategy of a run and for the benchmark, over comparable periods.

Expects ``backtest.daily`` (strategy, date, portfolio_return, benchmark_return, equity,
benchmark_equity, drawdown, turnover, costs) and ``backtest.trades`` (strategy, ticker, ...).
Strategies may start on different dates (a factor needs history before its first rebalance); the
benchmark row is computed from the latest strategy start, so every row of the comparison covers a
period the benchmark covers too. Per-strategy rows keep their own full period.
"""

from __future__ import annotations

import polars as pl

from quant_pipeline.core.metrics import performance_metrics

BENCHMARK = "benchmark"


def benchmark_daily(daily: pl.DataFrame) -> pl.DataFrame:
    """The benchmark's own daily frame (returns as ``portfolio_return``) from the common start."""
    start = daily.group_by("strategy").agg(pl.col("date").min())["date"].max()
    bench = (
        daily.filter(pl.col("date") >= start)
        .group_by("date")
        .agg(pl.col("benchmark_return").first())
        .sort("date")
    )
    equity = (1 + pl.col("portfolio_return")).cum_prod()
    return bench.select(
        "date",
        pl.col("benchmark_return").alias("portfolio_return"),
        pl.col("benchmark_return"),
    ).with_columns(
        equity.alias("equity"),
        equity.alias("benchmark_equity"),
        (equity / pl.max_horizontal(equity.cum_max(), pl.lit(1.0)) - 1).alias("drawdown"),
        pl.lit(0.0).alias("turnover"),
        pl.lit(0.0).alias("costs"),
    )


def metrics_for_strategies(daily: pl.DataFrame, trades: pl.DataFrame) -> pl.DataFrame:
    """Long metrics (strategy, metric, value) for each strategy in ``daily`` and the benchmark."""
    frames = []
    for (name,), part in daily.sort("date").group_by("strategy", maintain_order=True):
        strategy_trades = trades.filter(pl.col("strategy") == name).drop("strategy")
        m = performance_metrics(part.drop("strategy"), trades=strategy_trades)
        frames.append(m.select(pl.lit(name).alias("strategy"), "metric", "value"))
    bench = performance_metrics(benchmark_daily(daily))
    frames.append(bench.select(pl.lit(BENCHMARK).alias("strategy"), "metric", "value"))
    return pl.concat(frames, how="vertical_relaxed")

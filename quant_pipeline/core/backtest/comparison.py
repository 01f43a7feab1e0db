"""Metrics for every strategy of a run and for the benchmark, over comparable periods.

Expects ``backtest.daily`` (strategy, date, portfolio_return, benchmark_return, equity,
benchmark_equity, drawdown, turnover, costs) and ``backtest.trades`` (strategy, ticker, ...).
Strategies may start on different dates (a factor needs history before its first rebalance); the
benchmark row is computed from the latest strategy start, so every row of the comparison covers a
period the benchmark covers too. Per-strategy rows keep their own full period.
"""

from __future__ import annotations

import polars as pl

from quant_pipeline.core.backtest.metrics import (
    compounded,
    drawdown,
    month_keys,
    performance_metrics,
)

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
        drawdown(pl.col("portfolio_return")).alias("drawdown"),
        pl.lit(0.0).alias("turnover"),
        pl.lit(0.0).alias("costs"),
    )


def starting_capital(daily: pl.DataFrame) -> float | None:
    """The capital of a share-based run: ``portfolio_value / equity`` on its first day, or None
    when ``daily`` has no ``portfolio_value`` (a weights-only backtest)."""
    if "portfolio_value" not in daily.columns or daily.height == 0:
        return None
    first = daily.sort("date").row(0, named=True)
    if not first["equity"]:
        return None
    return float(first["portfolio_value"] / first["equity"])


def metrics_for_strategies(daily: pl.DataFrame, trades: pl.DataFrame) -> pl.DataFrame:
    """Long metrics (strategy, metric, value) per strategy in ``daily`` by name, then benchmark.

    A share-based ``daily`` (with ``portfolio_value``, ``fees``, ``slippage``) adds
    ``net_profit`` (in currency, from the capital) and ``total_fees`` / ``total_slippage``.
    """
    frames = []
    for (name,), part in daily.sort("strategy", "date").group_by("strategy", maintain_order=True):
        strategy_trades = trades.filter(pl.col("strategy") == name).drop("strategy")
        # a blend's rows carry no fees or cash of their own (they stay with its sleeves): drop
        # such all-null columns so they read as "not measured", not as zero.
        part = part.drop(
            [
                c
                for c in ("cash", "fees", "slippage")
                if c in part.columns and part[c].null_count() == part.height
            ]
        )
        m = performance_metrics(
            part.drop("strategy"), trades=strategy_trades, capital=starting_capital(part)
        )
        frames.append(m.select(pl.lit(name).alias("strategy"), "metric", "value"))
    bench = performance_metrics(benchmark_daily(daily))
    frames.append(bench.select(pl.lit(BENCHMARK).alias("strategy"), "metric", "value"))
    return pl.concat(frames, how="vertical_relaxed")


RELATIVE_METRICS: tuple[str, ...] = (
    "benchmark_total_return",
    "benchmark_cagr",
    "excess_cagr",
    "alpha",
    "beta",
    "tracking_error",
    "information_ratio",
    "treynor_ratio",
)


def relative_metrics(daily: pl.DataFrame, benchmarks: pl.DataFrame) -> pl.DataFrame:
    """Each strategy against each benchmark: ``strategy, benchmark, metric, value`` (long).

    ``daily``: backtest.daily (strategy, date, portfolio_return). ``benchmarks``:
    backtest.benchmarks (date, benchmark, return). Each pair is measured over the strategy's own
    dates, the benchmark's return being 0 on its first day (both start at that close, as in
    ``backtest.daily``) and on dates it lacks. Metrics (definitions in docs/metrics.md):
    ``RELATIVE_METRICS``; ``excess_cagr`` = strategy CAGR - benchmark CAGR.
    """
    frames = []
    names = benchmarks["benchmark"].unique().sort().to_list()
    for (name,), part in daily.sort("date").group_by("strategy", maintain_order=True):
        part = part.select("date", "portfolio_return")
        first = part["date"].min()
        for bench in names:
            series = benchmarks.filter(pl.col("benchmark") == bench).select(
                "date", pl.col("return").alias("benchmark_return")
            )
            frame = part.join(series, on="date", how="left").with_columns(
                pl.when(pl.col("date") == first)
                .then(0.0)
                .otherwise(pl.col("benchmark_return").fill_null(0.0))
                .alias("benchmark_return")
            )
            own = dict(performance_metrics(frame).iter_rows())
            theirs = dict(
                performance_metrics(
                    frame, benchmark_col=None, returns_col="benchmark_return"
                ).iter_rows()
            )
            values = {
                "benchmark_total_return": theirs["total_return"],
                "benchmark_cagr": theirs["cagr"],
                "excess_cagr": None
                if own["cagr"] is None or theirs["cagr"] is None
                else own["cagr"] - theirs["cagr"],
                **{m: own[m] for m in RELATIVE_METRICS[3:]},
            }
            frames.append(
                pl.DataFrame(
                    {
                        "strategy": name,
                        "benchmark": bench,
                        "metric": list(values),
                        "value": list(values.values()),
                    },
                    schema={
                        "strategy": pl.String,
                        "benchmark": pl.String,
                        "metric": pl.String,
                        "value": pl.Float64,
                    },
                )
            )
    if not frames:
        return pl.DataFrame(
            schema={
                "strategy": pl.String,
                "benchmark": pl.String,
                "metric": pl.String,
                "value": pl.Float64,
            }
        )
    return pl.concat(frames)


MONTHLY_SCHEMA: dict[str, pl.DataType] = {
    "year": pl.Int32,
    "month": pl.Int32,
    "portfolio_return": pl.Float64,
    "benchmark_return": pl.Float64,
    "excess_return": pl.Float64,
}


def monthly_summary(daily: pl.DataFrame) -> pl.DataFrame:
    """Compounded returns per calendar month (``backtest.monthly_returns``).

    ``daily``: ``date, portfolio_return, benchmark_return`` and optionally ``strategy`` (then one
    block per strategy). Returns ``[strategy,] year, month, portfolio_return, benchmark_return,
    excess_return`` with ``prod(1 + r) - 1`` (``metrics.compounded``, the compounding of
    ``metrics.monthly_returns``) over the month's days present (a partial first or
    last month compounds the days it has) and excess = portfolio - benchmark, sorted.
    """
    keys = ["strategy"] if "strategy" in daily.columns else []
    return (
        daily.group_by(*keys, *month_keys())
        .agg(
            compounded("portfolio_return").alias("portfolio_return"),
            compounded("benchmark_return").alias("benchmark_return"),
        )
        .with_columns(
            (pl.col("portfolio_return") - pl.col("benchmark_return")).alias("excess_return")
        )
        .sort(*keys, "year", "month")
        .select(*keys, *MONTHLY_SCHEMA)
        .cast(MONTHLY_SCHEMA)
    )


def sector_exposure(positions: pl.DataFrame) -> pl.DataFrame:
    """Weight per sector after each rebalance: ``[strategy,] date, sector, weight``.

    ``positions``: ``rebalance_date, sector, weight`` (``backtest.positions``; weights of the
    account value after trading). A null sector is shown as 'Unknown'. Cash is not a sector, so
    a date's weights sum to the invested fraction.
    """
    keys = ["strategy"] if "strategy" in positions.columns else []
    return (
        positions.group_by(
            *keys,
            pl.col("rebalance_date").alias("date"),
            pl.col("sector").fill_null("Unknown"),
        )
        .agg(pl.col("weight").sum())
        .sort(*keys, "date", "sector")
    )

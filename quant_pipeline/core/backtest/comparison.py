"""Metrics for every strategy of a run and for the benchmark, each pair over the same dates.

Expects ``backtest.daily`` (strategy, date, portfolio_return, benchmark_return, equity,
benchmark_equity, drawdown, turnover, costs) and ``backtest.trades`` (strategy, ticker, ...).
Strategies may start on different dates (a factor needs history before its first rebalance).

Windows (docs/metrics.md, "Windows"): a strategy's own window is its dates in ``backtest.daily``;
its benchmark figures are the ``benchmark_return`` of those same rows. The common window is the
intersection of the windows of the strategies that start at most ``tolerance_days`` after the
median strategy start and end at most ``tolerance_days`` before the median end
(:func:`common_window`): one strategy that starts years after the others (a rule that rarely lets
a name in) or stops early is left out of it, with the reason, instead of shrinking everyone's
comparison to its dates. The median, not the earliest start, is the reference because a signal
strategy that needs little history starts long before the factor strategies (on the demo
livermore_breakout trades a month after the data begins, the factor strategies 12-15 months
later): measured from it, every factor strategy would be "late". A window opens at
the close of its first day: the benchmark's return on that day is 0, and so is a strategy's when
the day is not its own first day (its return on its own first day is the cost of its opening
orders, as in ``backtest.daily``). The rule reads each row on its own, so no result depends on
row order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

import polars as pl

from quant_pipeline.core.backtest.metrics import (
    COMPARISON_METRICS,
    MetricsInputError,
    cagr,
    compounded,
    drawdown,
    month_keys,
    performance_metrics,
)
from quant_pipeline.core.data.frames import require_columns

BENCHMARK = "benchmark"
# A strategy is in the common window when it starts at most this many calendar days after the
# median strategy start (and ends at most this many before the median end): a year, so
# strategies that need up to a year more history than most still share one window.
COMMON_WINDOW_TOLERANCE_DAYS = 365
# Agreement required between two strategies' benchmark returns on one date (same series).
_BENCHMARK_TOLERANCE = 1e-12
WINDOW_COLUMNS: tuple[str, ...] = ("start", "end", "trading_days")
BENCHMARK_COLUMNS: tuple[str, ...] = ("benchmark_cagr", "excess_cagr")


def strategy_windows(daily: pl.DataFrame) -> pl.DataFrame:
    """``strategy, start, end, trading_days``: each strategy's first and last date and row count
    in ``daily`` (backtest.daily), sorted by strategy."""
    require_columns(daily, ["strategy", "date"], "backtest.daily", MetricsInputError)
    return (
        daily.group_by("strategy")
        .agg(
            pl.col("date").min().alias("start"),
            pl.col("date").max().alias("end"),
            pl.len().cast(pl.Float64).alias("trading_days"),
        )
        .sort("strategy")
    )


@dataclass(frozen=True)
class CommonWindow:
    """The dates every ``members`` strategy is compared over, and why the others are not."""

    start: date
    end: date
    members: tuple[str, ...]
    left_out: dict[str, str] = field(default_factory=dict)
    tolerance_days: int = COMMON_WINDOW_TOLERANCE_DAYS


def common_window(
    daily: pl.DataFrame, tolerance_days: int = COMMON_WINDOW_TOLERANCE_DAYS
) -> CommonWindow:
    """The common window of ``daily`` (backtest.daily): members are the strategies whose start is
    at most ``tolerance_days`` calendar days after the median start (the lower median: with two
    strategies, the earlier start) and whose end is at most ``tolerance_days`` before the median
    end (the upper median); the window runs from the latest member start to the earliest member
    end. At least the strategies starting by the median start and ending from the median end are
    members. Every other strategy is in ``left_out`` with the reason (its start or end, the
    window and the median). Members whose windows do not overlap are an error naming them."""
    if tolerance_days < 0:
        raise MetricsInputError(
            f"common window tolerance must be a whole number of days >= 0, got {tolerance_days!r}"
        )
    windows = strategy_windows(daily)
    if windows.height == 0:
        raise MetricsInputError("backtest.daily is empty: no strategy, so no common window")
    slack = timedelta(days=tolerance_days)
    starts, ends = windows["start"].sort(), windows["end"].sort()
    median_start, median_end = starts[(windows.height - 1) // 2], ends[windows.height // 2]
    inside = (pl.col("start") <= median_start + slack) & (pl.col("end") >= median_end - slack)
    members = windows.filter(inside)
    start, end = members["start"].max(), members["end"].min()
    if start > end:
        raise MetricsInputError(
            f"backtest.daily has no common window: the latest strategy start {start} is "
            f"after the earliest strategy end {end} (windows {windows.rows()})"
        )
    left_out = {}
    days = f"{tolerance_days} day{'' if tolerance_days == 1 else 's'}"
    span = f"the common window {start}..{end}"
    own = "compared in backtest.comparison over its own window"
    for name, first, last, _ in windows.filter(~inside).iter_rows():
        if first > median_start + slack:
            why = (
                f"starts {first}, after {span} opens (more than {days} after the median "
                f"strategy start, {median_start}); {own}"
            )
        else:
            why = (
                f"ends {last}, before {span} closes (more than {days} before the median "
                f"strategy end, {median_end}); {own}"
            )
        left_out[name] = why
    return CommonWindow(start, end, tuple(members["strategy"].to_list()), left_out, tolerance_days)


def window_frame(part: pl.DataFrame, start: date, end: date) -> pl.DataFrame:
    """One strategy's ``date, portfolio_return, benchmark_return`` over ``[start, end]``, opened
    at the close of ``start``: the benchmark's return that day is 0, and the strategy's too unless
    ``start`` is its own first day (then it keeps the cost of its opening orders)."""
    opens_here = part["date"].min() == start
    return (
        part.filter(pl.col("date").is_between(start, end))
        .sort("date")
        .select(
            "date",
            pl.when((pl.col("date") == start) & (not opens_here))
            .then(0.0)
            .otherwise(pl.col("portfolio_return"))
            .alias("portfolio_return"),
            pl.when(pl.col("date") == start)
            .then(0.0)
            .otherwise(pl.col("benchmark_return"))
            .alias("benchmark_return"),
        )
    )


def benchmark_daily(
    daily: pl.DataFrame,
    tolerance_days: int = COMMON_WINDOW_TOLERANCE_DAYS,
    own_benchmarks: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """The benchmark's own daily frame (returns as ``portfolio_return``) over the common window
    (:func:`common_window`), read from the member strategies' rows: the same dates as theirs.

    ``own_benchmarks`` names the strategies compared with a benchmark of their own (e.g. the
    LEAN Magic Formula with QVAL) instead of the run's primary one: their ``benchmark_return``
    is another series, so it is not read. Every other member's ``benchmark_return`` is the same
    series after its first day; dates where two of them disagree by more than 1e-12 are an
    error (they would name different benchmarks), and so is a window none of them is in.
    """
    window = common_window(daily, tolerance_days)
    start, end = window.start, window.end
    readers = [m for m in window.members if m not in (own_benchmarks or {})]
    if not readers:
        raise MetricsInputError(
            f"backtest.daily: every strategy in the common window {start}..{end} "
            f"({list(window.members)}) has a benchmark of its own ({dict(own_benchmarks or {})}): "
            "none carries the primary benchmark's returns"
        )
    later = daily.filter(
        pl.col("strategy").is_in(readers) & (pl.col("date") > start) & (pl.col("date") <= end)
    )
    per_date = later.group_by("date").agg(
        pl.col("benchmark_return").min().alias("low"),
        pl.col("benchmark_return").max().alias("high"),
    )
    split = per_date.filter((pl.col("high") - pl.col("low")).abs() > _BENCHMARK_TOLERANCE)
    if split.height:
        raise MetricsInputError(
            f"backtest.daily: the strategies' benchmark_return differ on {split.height} dates "
            f"(e.g. {split.sort('date').head(3).rows()}): one benchmark series is required"
        )
    bench = pl.concat(
        [
            pl.DataFrame({"date": [start], "low": [0.0]}),
            per_date.select("date", "low"),
        ],
        how="vertical_relaxed",
    ).sort("date")
    return _benchmark_as_strategy(bench.rename({"low": "benchmark_return"}))


def _benchmark_as_strategy(frame: pl.DataFrame) -> pl.DataFrame:
    """``date, benchmark_return`` as a daily frame whose portfolio is the benchmark itself."""
    equity = (1 + pl.col("portfolio_return")).cum_prod()
    return frame.select(
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


def benchmark_metrics(part: pl.DataFrame, risk_free_rate: float = 0.0) -> pl.DataFrame:
    """``metric, value`` of the benchmark over one strategy's own dates: ``part`` is that
    strategy's ``backtest.daily`` rows (its ``benchmark_return`` is 0 on its first day)."""
    require_columns(part, ["date", "benchmark_return"], "backtest.daily", MetricsInputError)
    frame = _benchmark_as_strategy(part.sort("date").select("date", "benchmark_return"))
    return performance_metrics(frame, risk_free_rate=risk_free_rate)


def starting_capital(daily: pl.DataFrame) -> float | None:
    """The capital of a share-based run: ``portfolio_value / equity`` on its first day, or None
    when ``daily`` has no ``portfolio_value`` (a weights-only backtest)."""
    if "portfolio_value" not in daily.columns or daily.height == 0:
        return None
    first = daily.sort("date").row(0, named=True)
    if not first["equity"]:
        return None
    return float(first["portfolio_value"] / first["equity"])


def metrics_for_strategies(
    daily: pl.DataFrame,
    trades: pl.DataFrame,
    risk_free_rate: float = 0.0,
    tolerance_days: int = COMMON_WINDOW_TOLERANCE_DAYS,
    own_benchmarks: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """Long metrics (strategy, metric, value) per strategy in ``daily`` by name, then benchmark
    (over the common window, :func:`common_window` with ``tolerance_days``; the primary
    benchmark, :func:`benchmark_daily` with ``own_benchmarks``).

    A share-based ``daily`` (with ``portfolio_value``, ``fees``, ``slippage``) adds
    ``net_profit_currency`` (in currency, from the capital) and ``total_fees`` / ``total_slippage``.
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
            part.drop("strategy"),
            trades=strategy_trades,
            risk_free_rate=risk_free_rate,
            capital=starting_capital(part),
        )
        frames.append(m.select(pl.lit(name).alias("strategy"), "metric", "value"))
    bench = performance_metrics(
        benchmark_daily(daily, tolerance_days, own_benchmarks), risk_free_rate=risk_free_rate
    )
    frames.append(bench.select(pl.lit(BENCHMARK).alias("strategy"), "metric", "value"))
    return pl.concat(frames, how="vertical_relaxed")


def tearsheet_metrics(
    metrics_long: pl.DataFrame,
    part: pl.DataFrame,
    strategy: str,
    label: str,
    risk_free_rate: float = 0.0,
) -> pl.DataFrame:
    """``strategy, metric, value``: ``strategy``'s rows of ``metrics_long`` (backtest.metrics),
    then the benchmark over the same dates (``part``: its backtest.daily rows) as ``label``."""
    own = metrics_long.filter(pl.col("strategy") == strategy).select("strategy", "metric", "value")
    bench = benchmark_metrics(part, risk_free_rate).select(
        pl.lit(label).alias("strategy"), "metric", "value"
    )
    return pl.concat([own, bench], how="vertical_relaxed")


def _comparison_row(
    name: str, start: date, end: date, frame: pl.DataFrame, m: dict[str, float | None]
) -> dict[str, object]:
    """One comparison row: window, headline metrics, the benchmark's CAGR over ``frame``."""
    bench = cagr(frame["benchmark_return"])
    own = m.get("cagr")
    return {
        "strategy": name,
        "start": start,
        "end": end,
        "trading_days": float(frame.height),
        **{k: m.get(k) for k in COMPARISON_METRICS},
        "benchmark_cagr": bench,
        "excess_cagr": None if own is None or bench is None else own - bench,
    }


COMPARISON_SCHEMA: dict[str, pl.DataType] = {
    "strategy": pl.String,
    "start": pl.Date,
    "end": pl.Date,
    "trading_days": pl.Float64,
    **dict.fromkeys(COMPARISON_METRICS, pl.Float64),
    "benchmark_cagr": pl.Float64,
    "excess_cagr": pl.Float64,
}


def comparison_by_window(daily: pl.DataFrame, metrics_long: pl.DataFrame) -> pl.DataFrame:
    """``backtest.comparison``: one row per strategy over its own window (``COMPARISON_SCHEMA``).

    ``daily``: backtest.daily; ``metrics_long``: backtest.metrics (the headline metrics are read
    from it, so the two tables cannot disagree). ``benchmark_cagr`` is the CAGR of the strategy's
    own ``benchmark_return`` rows (same dates, 0 on the first day) and ``excess_cagr`` = ``cagr``
    - ``benchmark_cagr``. No benchmark row: each row carries its benchmark over its dates.
    """
    windows = strategy_windows(daily)
    values = {
        (s, k): v
        for s, k, v in metrics_long.select("strategy", "metric", "value").iter_rows()
        if k in COMPARISON_METRICS
    }
    rows = []
    for name, start, end, _ in windows.iter_rows():
        part = daily.filter(pl.col("strategy") == name).sort("date")
        m = {k: values.get((name, k)) for k in COMPARISON_METRICS}
        rows.append(_comparison_row(name, start, end, part, m))
    return pl.DataFrame(rows, schema=COMPARISON_SCHEMA, orient="row")


COMMON_WINDOW_SCHEMA: dict[str, pl.DataType] = {**COMPARISON_SCHEMA, "flags": pl.String}


def comparison_common_window(
    daily: pl.DataFrame,
    risk_free_rate: float = 0.0,
    tolerance_days: int = COMMON_WINDOW_TOLERANCE_DAYS,
    own_benchmarks: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """``backtest.comparison_common_window``: every strategy, then the benchmark, over one window.

    The window is :func:`common_window` with ``tolerance_days``, opened as in
    :func:`window_frame`; columns ``COMMON_WINDOW_SCHEMA`` (the benchmark row's excess is 0, its
    dates the members' dates). A strategy left out of the window keeps a row with the window's
    start and end, null figures and the reason in ``flags`` (null for the members). A member in
    ``own_benchmarks`` (strategy -> its benchmark) has its ``benchmark_cagr`` / ``excess_cagr``
    against that benchmark, and its flags say so: the benchmark row is the primary benchmark.
    """
    own_benchmarks = own_benchmarks or {}
    window = common_window(daily, tolerance_days)
    start, end = window.start, window.end
    rows = []
    for (name,), part in daily.sort("strategy", "date").group_by("strategy", maintain_order=True):
        if name in window.left_out:
            rows.append(
                {"strategy": name, "start": start, "end": end, "flags": window.left_out[name]}
            )
            continue
        frame = window_frame(part, start, end)
        m = dict(performance_metrics(frame, risk_free_rate=risk_free_rate).iter_rows())
        row = _comparison_row(name, start, end, frame, m)
        if name in own_benchmarks:
            row["flags"] = (
                f"benchmark_cagr and excess_cagr against its own benchmark "
                f"{own_benchmarks[name]}, not the benchmark row"
            )
        rows.append(row)
    bench = benchmark_daily(daily, tolerance_days, own_benchmarks)
    m = dict(performance_metrics(bench, risk_free_rate=risk_free_rate).iter_rows())
    rows.append(_comparison_row(BENCHMARK, start, end, bench, m))
    return pl.DataFrame(
        [{**dict.fromkeys(COMMON_WINDOW_SCHEMA), **row} for row in rows],
        schema=COMMON_WINDOW_SCHEMA,
        orient="row",
    )


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


def relative_metrics(
    daily: pl.DataFrame, benchmarks: pl.DataFrame, risk_free_rate: float = 0.0
) -> pl.DataFrame:
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
            own = dict(performance_metrics(frame, risk_free_rate=risk_free_rate).iter_rows())
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

"""The share-based simulation on a price matrix built once: a sweep's fast path.

:func:`core.backtest.share_simulation.simulate` selects, joins and as-of matches price rows for
every call and builds the trades, fills and positions tables; a sweep of 100 variants over 15M
price rows pays that 100 times and reads only the daily returns. Here the prices are laid out
once as dense (trading day x ticker) arrays (:class:`PriceMatrix`) and :func:`simulate_daily`
returns only ``simulate(...).daily``: the same account (capital, whole shares, commissions and
their minimum and cap, slippage, the cost reserve, sells before buys, buys cut to the cash,
tolerance band, minimum order, cash rate, stale prices, delisted holdings frozen and the
delisting return) through the same rebalance loop
(:func:`core.backtest.share_simulation.trade_rebalances`), fed with the same candidate arrays
in the same order, so the account at every rebalance is bit for bit the one ``simulate``
computes. Days between rebalances sum the holdings in another order than polars' group-by:
equal to ~1e-15 relative (tested to 1e-12 on the demo market).

Differences by design: no trades, fills, positions, unfilled or unaffordable tables; the price
checks (one row per ticker and date, adjusted close > 0) cover every row of ``prices`` at build
time, not only the rows inside holding windows (stricter).

Memory: three (days x tickers) arrays (close, adjusted close: 8 bytes; row index: 4 bytes), about
300 MB at 3,000 tickers x 5,040 days; ``tickers=`` keeps only the columns some weights use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from quant_pipeline.core.backtest import reference_engine as bt
from quant_pipeline.core.backtest.share_simulation import (
    SIM_DAILY_SCHEMA,
    Candidates,
    TradingModel,
    trade_rebalances,
)
from quant_pipeline.core.data.calendar import TRADING_DAYS_PER_YEAR


@dataclass(frozen=True)
class PriceMatrix:
    """Prices as (trading day x ticker) arrays, shared by many :func:`simulate_daily` calls.

    ``dates``: every date with a price row (any ticker), sorted: day i. ``tickers``: the columns,
    sorted. ``close[i, j]`` / ``eff[i, j]``: the as-traded close and adjusted close of ticker j's
    row of day i (NaN without a row with a valid - non-null, non-NaN - adjusted close);
    ``row[i, j]``: the day of its last valid row <= day i (-1 before the first), so the as-of
    price the simulation reads is ``eff[row[i, j], j]`` (:meth:`asof`).
    ``last_own[j]``: the ticker's last valid day. ``benchmark[i]``: the benchmark return dated
    day i (0 when the benchmark has no row that day).
    """

    dates: np.ndarray
    tickers: np.ndarray
    close: np.ndarray
    eff: np.ndarray
    row: np.ndarray
    last_own: np.ndarray
    benchmark: np.ndarray

    @classmethod
    def from_prices(
        cls,
        prices: pl.DataFrame,
        benchmark: pl.DataFrame | None = None,
        tickers: list[str] | None = None,
    ) -> PriceMatrix:
        """Lay out ``prices`` (curated.prices: ticker, date, close, adj_close; plus daily_return
        when ``benchmark`` is None: the equal-weight default of ``simulate``).

        ``tickers``: keep only these columns (the trading calendar and the default benchmark
        still come from every row). Raises ``BacktestInputError`` on a duplicated (ticker, date)
        or an adjusted close <= 0 anywhere.
        """
        bench = bt._checked_benchmark(benchmark, prices)
        all_prices = bt._price_columns(prices)
        dates = all_prices["date"].drop_nulls().unique().sort()
        if dates.len() == 0:
            raise bt.BacktestInputError("prices is empty: no trading days")
        valid = all_prices.filter(
            pl.col("adj_close").is_not_null()
            & pl.col("adj_close").is_not_nan()
            & pl.col("ticker").is_not_null()
            & pl.col("date").is_not_null()
        )
        if tickers is not None:
            valid = valid.filter(pl.col("ticker").is_in(pl.Series(tickers).implode()))
        names = valid["ticker"].unique().sort()
        day = _day_index(dates, valid["date"])
        col = valid["ticker"].cast(pl.Enum(names)).to_physical().to_numpy().astype(np.int64)
        return cls._laid_out(dates, names, day, col, valid, bench)

    @classmethod
    def _laid_out(cls, dates, names, day, col, valid, bench) -> PriceMatrix:
        n_days, n_tickers = dates.len(), names.len()
        adj = valid["adj_close"].to_numpy()
        if (adj <= 0).any():
            bad = valid.filter(pl.col("adj_close") <= 0)
            raise bt.BacktestInputError(
                f"prices has {bad.height} rows with adj_close <= 0, e.g. {bad.head(3).to_dicts()}"
            )
        flat = day.astype(np.int64) * n_tickers + col
        cells = np.zeros(n_days * n_tickers, dtype=bool)
        cells[flat] = True
        if int(cells.sum()) != flat.size:  # two rows landed on one (day, ticker)
            bt._check_unique(valid, "prices", ("ticker", "date"))  # names them
        del cells
        row = np.full(n_days * n_tickers, -1, dtype=np.int32)
        row[flat] = day
        row = np.maximum.accumulate(row.reshape(n_days, n_tickers), axis=0)
        close = np.full(n_days * n_tickers, np.nan)
        close[flat] = valid["close"].fill_null(np.nan).to_numpy()
        eff = np.full(n_days * n_tickers, np.nan)
        eff[flat] = adj
        b = np.zeros(n_days)
        known = bench.filter(pl.col("date").is_in(dates.implode()))
        b[_day_index(dates, known["date"])] = known["benchmark_return"].fill_null(0.0).to_numpy()
        return cls(
            dates=dates.to_numpy(),
            tickers=names.to_numpy(),
            close=close.reshape(n_days, n_tickers),
            eff=eff.reshape(n_days, n_tickers),
            row=row,
            last_own=row[-1].copy(),
            benchmark=b,
        )

    def asof(self, day: np.ndarray, col: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Close, adjusted close and row day of the last valid row <= ``day`` of column ``col``
        (broadcast pairs; NaN, NaN, -1 when none yet or ``col`` is -1)."""
        c = np.maximum(col, 0)
        seen = np.where(col >= 0, self.row[day, c], -1)
        at = np.maximum(seen, 0)
        priced = seen >= 0
        return (
            np.where(priced, self.close[at, c], np.nan),
            np.where(priced, self.eff[at, c], np.nan),
            seen,
        )


def _day_index(dates: pl.Series, values: pl.Series) -> np.ndarray:
    """Position of each of ``values`` in the sorted, unique ``dates`` (all must be present)."""
    days = dates.to_physical().to_numpy().astype(np.int64)  # days since 1970-01-01
    lookup = np.full(int(days[-1] - days[0]) + 1, -1, dtype=np.int64)
    lookup[days - days[0]] = np.arange(days.size)
    return lookup[values.to_physical().to_numpy().astype(np.int64) - days[0]]


@dataclass(frozen=True)
class _Schedule:
    dates: list[date]  # the rebalance dates kept (<= end)
    di: np.ndarray  # their day index
    stop: np.ndarray  # last day held after each (the next rebalance, or end)
    end: int  # day index of the last simulated day


def _schedule(w: pl.DataFrame, matrix: PriceMatrix, end: date | None) -> _Schedule:
    """As ``reference_engine._schedule``: rebalance dates <= end must be trading days."""
    rebal = w["rebalance_date"].unique().sort()
    if end is not None:
        rebal = rebal.filter(rebal <= end)
    if rebal.len() == 0:
        raise bt.BacktestInputError(f"weights has no rebalance date on or before end={end}")
    wanted = rebal.to_numpy()
    di = np.minimum(np.searchsorted(matrix.dates, wanted), matrix.dates.size - 1)
    off = matrix.dates[di] != wanted
    if off.any():
        raise bt.BacktestInputError(
            "weights has rebalance dates that are not trading days in prices: "
            f"{rebal.filter(pl.Series(off)).head(5).to_list()}"
        )
    last = matrix.dates.size - 1
    if end is not None:
        last = int(np.searchsorted(matrix.dates, np.datetime64(end, "D"), "right")) - 1
    return _Schedule(rebal.to_list(), di, np.append(di[1:], last), last)


def _candidates(
    w: pl.DataFrame, matrix: PriceMatrix, sched: _Schedule, delisting_return: float | None
) -> tuple[Candidates, np.ndarray, np.ndarray]:
    """The candidate arrays ``simulate`` builds with joins, from the matrix: each rebalance's
    positive targets (weight 0 when no price within MAX_STALE_TRADING_DAYS) and the names it
    bought at the previous one, sorted by (k, descending w, ticker). Also the matrix column of
    each ticker id (-1: no valid price at all) and the delisting multiplier per ticker id."""
    w = w.filter((pl.col("weight") > 0) & pl.col("rebalance_date").is_in(sched.dates))
    local = w["ticker"].unique().sort()
    lt = w.select(pl.col("ticker").replace_strict(local, pl.int_range(local.len(), eager=True)))
    lt = lt.to_series().to_numpy()
    mc = np.searchsorted(matrix.tickers, local.to_numpy())
    mc = np.where(
        (mc < matrix.tickers.size)
        & (matrix.tickers[np.minimum(mc, matrix.tickers.size - 1)] == local.to_numpy()),
        mc,
        -1,
    )
    k = np.searchsorted(
        np.array(sched.dates, dtype="datetime64[D]"), w["rebalance_date"].to_numpy()
    )
    col = mc[lt]
    day = sched.di[k]
    seen = matrix.asof(day, col)[2]
    filled = (seen >= 0) & (day - seen <= bt.MAX_STALE_TRADING_DAYS)
    weight = np.where(filled, w["weight"].to_numpy(), 0.0)
    mult = _delisting_multiplier(matrix, sched, k, col, lt, local.len(), delisting_return)

    n_local = local.len()
    key = k * n_local + lt
    carried = (k[filled] + 1) * n_local + lt[filled]
    carried = np.setdiff1d(carried[k[filled] + 1 < len(sched.dates)], key)
    all_k = np.concatenate([k, carried // n_local])
    all_t = np.concatenate([lt, carried % n_local])
    all_w = np.concatenate([weight, np.zeros(carried.size)])
    order = np.lexsort((all_t, -all_w, all_k))
    all_k, all_t, all_w = all_k[order], all_t[order], all_w[order]
    close, eff = _asof(matrix, sched.di[all_k], mc[all_t], mult[all_t])
    return Candidates(all_k, all_t, all_w, close, eff, n_local), mc, mult


def _delisting_multiplier(
    matrix: PriceMatrix,
    sched: _Schedule,
    k: np.ndarray,
    col: np.ndarray,
    lt: np.ndarray,
    n_local: int,
    delisting_return: float | None,
) -> np.ndarray:
    """1 + delisting_return for the ticker ids ``reference_engine._effective_prices`` treats as
    delisted (a holding window of theirs ends after their last row in it, and their last valid
    row comes before the last market date), else 1. Applied on their last valid day only."""
    mult = np.ones(n_local)
    if delisting_return is None:
        return mult
    lo = np.maximum(sched.di[k] - bt.MAX_STALE_TRADING_DAYS, 0)
    hi = sched.stop[k]
    last_in = matrix.asof(hi, col)[2]
    candidate = (col >= 0) & (last_in >= lo) & (last_in < hi)
    candidate &= matrix.last_own[np.maximum(col, 0)] < matrix.dates.size - 1
    mult[np.unique(lt[candidate])] = 1.0 + delisting_return
    return mult


def _asof(
    matrix: PriceMatrix, day: np.ndarray, col: np.ndarray, mult: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """As-of close and effective price (delisting return on the last valid day) per pair."""
    close, eff, seen = matrix.asof(day, col)
    on_last = (col >= 0) & (seen == matrix.last_own[np.maximum(col, 0)])
    return close, np.where(on_last, eff * mult, eff)


def simulate_daily(
    weights: pl.DataFrame,
    matrix: PriceMatrix,
    model: TradingModel | None = None,
    end: date | None = None,
    delisting_return: float | None = None,
    strategy: str | None = None,
) -> pl.DataFrame:
    """``simulate(weights, prices, model, benchmark, end, delisting_return, strategy).daily``
    with ``matrix = PriceMatrix.from_prices(prices, benchmark)``: ``SIM_DAILY_SCHEMA`` rows from
    the first rebalance to ``end`` (default the last date of the prices).

    ``weights``: one strategy's rebalance_date, ticker, weight (as ``simulate``). Dates looked
    at: orders on D use prices dated <= D; day t's value uses prices dated <= t.
    """
    model = TradingModel() if model is None else model
    bt._check_delisting_return(delisting_return)
    w = bt._prepare_weights(weights)
    sched = _schedule(w, matrix, end)
    cand, mc, mult = _candidates(w, matrix, sched, delisting_return)
    daily_rate = (1.0 + model.cash_rate) ** (1.0 / TRADING_DAYS_PER_YEAR) - 1.0
    rows, summary = trade_rebalances(cand, sched.di, model, daily_rate)
    value, cash = _account_values(matrix, sched, cand, rows, summary, mc, mult, daily_rate)
    daily = _daily_frame(matrix, sched, summary, value, cash, model.capital)
    return bt._with_strategy(daily, strategy)


def _account_values(matrix, sched, cand, rows, summary, mc, mult, daily_rate):
    """Account value and cash on every day from the first rebalance to the end: after the
    trades on a rebalance day, else the shares held since the last rebalance at the day's
    as-of prices plus that rebalance's cash grown at the daily rate."""
    first = sched.di[0]
    n = sched.end - first + 1
    value = np.zeros(n)
    cash = np.zeros(n)
    growth = 1.0 + daily_rate
    for k, row in enumerate(rows):
        start, stop = sched.di[k], sched.stop[k]
        value[start - first], cash[start - first] = summary[k, 1], summary[k, 2]
        if stop <= start:
            continue
        days = np.arange(start + 1, stop + 1)
        held = row["units"] > 0
        tid = cand.tid[row["row"][held]]
        units = row["units"][held]
        prices = _asof(matrix, days[:, None], mc[tid], mult[tid])[1]
        grown = summary[k, 2] * growth ** (days - start).astype(float)
        span = slice(start + 1 - first, stop + 1 - first)
        value[span] = (prices * units).sum(axis=1) + grown
        cash[span] = grown
    return value, cash


def _daily_frame(matrix, sched, summary, value, cash, capital) -> pl.DataFrame:
    """``SIM_DAILY_SCHEMA`` columns from the account values and the rebalance summaries."""
    first = sched.di[0]
    n = value.size
    at = sched.di - first

    def on_rebalance(column: int) -> np.ndarray:
        out = np.zeros(n)
        out[at] = summary[:, column]
        return out

    costs = np.zeros(n)
    positive = summary[:, 0] > 0
    costs[at[positive]] = (summary[positive, 3] + summary[positive, 4]) / summary[positive, 0]
    bench = matrix.benchmark[first : sched.end + 1].copy()
    bench[0] = 0.0
    frame = pl.DataFrame(
        {
            "date": matrix.dates[first : sched.end + 1],
            "portfolio_return": value / np.concatenate([[capital], value[:-1]]) - 1.0,
            "benchmark_return": bench,
            "equity": value / capital,
            "benchmark_equity": np.cumprod(1.0 + bench),
            "turnover": on_rebalance(5),
            "costs": costs,
            "portfolio_value": value,
            "cash": cash,
            "fees": on_rebalance(3),
            "slippage": on_rebalance(4),
            "orders": on_rebalance(6).astype(np.int64),
        }
    )
    return frame.with_columns(
        (pl.col("equity") / pl.col("equity").cum_max() - 1.0).alias("drawdown")
    ).select([pl.col(c).cast(t) for c, t in SIM_DAILY_SCHEMA.items()])

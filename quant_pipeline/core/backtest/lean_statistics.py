"""LEAN's backtest statistics under LEAN's names, computed as LEAN computes them.

Source: QuantConnect/Lean, ``Common/Statistics/StatisticsBuilder.cs`` (the summary table and
the series it is computed on), ``PortfolioStatistics.cs`` (each statistic), ``Statistics.cs``
(annual performance, variance, tracking error, PSR, drawdown), ``Common/CapacityEstimate.cs`` and
``Common/SymbolCapacity.cs`` (Estimated Strategy Capacity, Lowest Capacity Asset) and
``Common/Securities/SecurityPortfolioModel.cs`` (the profit of a closing fill). The definitions,
and where this reproduction has to map LEAN's event loop onto daily data, are in
docs/metrics.md, "LEAN statistics". These are not the project's metrics (``metrics.py``): LEAN
annualises a Sharpe ratio from the compounded mean daily return, counts orders rather than round
trips, measures trades by the profit of each closing fill, and shows 0 where a value is undefined.

Pure polars, numpy and ``math``: frames in, one frame (``strategy, statistic, value, display``) out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl

from quant_pipeline.core.backtest.comparison import starting_capital
from quant_pipeline.core.backtest.metrics import (
    MetricsInputError,
    lean_probabilistic_sharpe_ratio,
)
from quant_pipeline.core.data.calendar import TRADING_DAYS_PER_YEAR
from quant_pipeline.core.data.frames import is_sorted_by, require_columns

# LEAN's summary rows (PerformanceMetrics.cs names), in StatisticsBuilder.GetSummary's order.
LEAN_STATISTICS: tuple[str, ...] = (
    "Total Orders",
    "Average Win",
    "Average Loss",
    "Compounding Annual Return",
    "Drawdown",
    "Expectancy",
    "Start Equity",
    "End Equity",
    "Net Profit",
    "Sharpe Ratio",
    "Sortino Ratio",
    "Probabilistic Sharpe Ratio",
    "Loss Rate",
    "Win Rate",
    "Profit-Loss Ratio",
    "Alpha",
    "Beta",
    "Annual Standard Deviation",
    "Annual Variance",
    "Information Ratio",
    "Tracking Error",
    "Treynor Ratio",
    "Total Fees",
    "Estimated Strategy Capacity",
    "Lowest Capacity Asset",
    "Drawdown Recovery",
)
LEAN_SCHEMA: dict[str, pl.DataType] = {
    "strategy": pl.String,
    "statistic": pl.String,
    "value": pl.Float64,
    "display": pl.String,
}
# How GetSummary prints each row: (kind, decimals). "percent" multiplies by 100 and adds "%".
_DISPLAY: dict[str, tuple[str, int]] = {
    "Total Orders": ("count", 0),
    "Average Win": ("percent", 2),
    "Average Loss": ("percent", 2),
    "Compounding Annual Return": ("percent", 3),
    "Drawdown": ("percent", 3),
    "Expectancy": ("number", 3),
    "Start Equity": ("number", 2),
    "End Equity": ("number", 2),
    "Net Profit": ("percent", 3),
    "Sharpe Ratio": ("number", 3),
    "Sortino Ratio": ("number", 3),
    "Probabilistic Sharpe Ratio": ("percent", 3),
    "Loss Rate": ("percent", 0),
    "Win Rate": ("percent", 0),
    "Profit-Loss Ratio": ("number", 2),
    "Alpha": ("number", 3),
    "Beta": ("number", 3),
    "Annual Standard Deviation": ("number", 3),
    "Annual Variance": ("number", 3),
    "Information Ratio": ("number", 3),
    "Tracking Error": ("number", 3),
    "Treynor Ratio": ("number", 3),
    "Total Fees": ("money", 2),
    "Estimated Strategy Capacity": ("capacity", 2),
    "Drawdown Recovery": ("count", 0),
}
FILL_COLUMNS = ("rebalance_date", "ticker", "shares", "execution_price", "commission")
# SymbolCapacity.cs: daily bars count 2% of their dollar volume; a symbol's capacity effect lasts
# 30 days after its last order; CapacityEstimate.cs blends a new estimate 0.33 / 0.66.
_DAILY_SCALE = 0.02
_EFFECT_DAYS = 30
_MINUTES_PER_SESSION = 390.0


def _sample_variance(values: list[float]) -> float:
    """MathNet ``Variance`` (n - 1), with LEAN's ``IsNaNOrZero`` fallback to 0 below 2 values."""
    if len(values) < 2:
        return 0.0
    return float(pl.Series(values, dtype=pl.Float64).var(ddof=1))


def _annual_performance(values: list[float], periods: int) -> float:
    """``Statistics.AnnualPerformance``: ``(mean(r) + 1)^P - 1``."""
    return (sum(values) / len(values) + 1.0) ** periods - 1.0


def _covariance(x: list[float], y: list[float]) -> float:
    frame = pl.DataFrame({"x": x, "y": y})
    return float(frame.select(pl.cov("x", "y", ddof=1)).item())


def lean_transactions(fills: pl.DataFrame) -> pl.DataFrame:
    """LEAN's transaction records from ``backtest.fills`` rows of one strategy: ``date, ticker,
    profit_loss`` for every order that reduces a long holding.

    ``SecurityPortfolioModel.ProcessFill``: the holding keeps an average price (a buy moves it
    to the quantity-weighted mean, a sale leaves it, a position back to 0 resets it); a sale of
    ``q`` shares at the fill price ``p`` closes ``q`` at a profit ``(p - average) * q``, and the
    record is that profit minus twice the order's fee. Orders run by date, sales before buys
    (the simulation sells first to fund its buys), then by ticker.
    """
    require_columns(fills, FILL_COLUMNS, "backtest.fills", MetricsInputError)
    ordered = fills.sort(
        "rebalance_date", pl.col("shares") > 0, "ticker", maintain_order=True
    ).select(FILL_COLUMNS)
    held: dict[str, tuple[float, float]] = {}  # ticker -> (shares, average price)
    rows = []
    for day, ticker, shares, price, fee in ordered.iter_rows():
        quantity, average = held.get(ticker, (0.0, 0.0))
        if shares < 0 and quantity > 0:
            closed = min(-shares, quantity)
            rows.append((day, ticker, (price - average) * closed - 2.0 * (fee or 0.0)))
        if shares > 0:
            average = (average * quantity + shares * price) / (quantity + shares)
        quantity += shares
        held[ticker] = (quantity, 0.0 if abs(quantity) < 1e-9 else average)
    return pl.DataFrame(
        rows, schema={"date": pl.Date, "ticker": pl.String, "profit_loss": pl.Float64}, orient="row"
    )


def _trade_statistics(profit_loss: list[float], capital: float) -> dict[str, float]:
    """PortfolioStatistics' trade block: each record as a fraction of the running capital."""
    running, profit, loss, wins, losses = capital, 0.0, 0.0, 0, 0
    for pnl in profit_loss:
        if pnl > 0:
            profit += pnl / running
            wins += 1
        else:
            loss += pnl / running
            losses += 1
        running += pnl
    average_win = profit / wins if wins else 0.0
    average_loss = loss / losses if losses else 0.0
    ratio = 0.0 if average_loss == 0 else average_win / abs(average_loss)
    total = wins + losses
    win_rate = wins / total if total else 0.0
    loss_rate = losses / total if total else 0.0
    return {
        "Average Win": average_win,
        "Average Loss": average_loss,
        "Profit-Loss Ratio": ratio,
        "Win Rate": win_rate,
        "Loss Rate": loss_rate,
        "Expectancy": win_rate * ratio - loss_rate,
    }


def _drawdown_metrics(dates: list[date], equity: list[float]) -> tuple[float, float]:
    """``Statistics.CalculateDrawdownMetrics(equity, 3)``: the deepest fall from a running peak
    (a positive fraction, rounded to 3 decimals) and the longest peak-to-recovery spell in
    calendar days."""
    if len(equity) < 2:
        return 0.0, 0.0
    peak, peak_date, start = equity[0], dates[0], None
    deepest, recovery = 0.0, 0.0
    for day, value in zip(dates, equity, strict=True):
        if value >= peak:
            if start is not None:
                recovery = max(recovery, float((day - start).days))
                start = None
            peak, peak_date = value, day
        current = value / peak - 1.0
        if current < 0:
            deepest = min(deepest, current)
            if start is None:
                start = peak_date
    return round(abs(deepest), 3), recovery


def _relative_block(
    perf: list[float], bench: list[float], rf: float, periods: int
) -> dict[str, float]:
    """Sharpe, Sortino, alpha, beta, tracking error, IR, Treynor and PSR as PortfolioStatistics
    computes them on ``listPerformance`` / ``listBenchmark``."""
    variance = _sample_variance(perf) * periods
    deviation = math.sqrt(variance)
    annual = _annual_performance(perf, periods)
    annual_bench = _annual_performance(bench, periods)
    downside = math.sqrt(_sample_variance([r for r in perf if r < 0]) * periods)
    bench_variance = _sample_variance(bench)
    beta = 0.0 if bench_variance == 0 else _covariance(perf, bench) / bench_variance
    active = [p - b for p, b in zip(perf, bench, strict=True)]
    tracking = math.sqrt(_sample_variance(active) * periods)
    return {
        "Sharpe Ratio": 0.0 if deviation == 0 else (annual - rf) / deviation,
        "Sortino Ratio": 0.0 if downside == 0 else (annual - rf) / downside,
        "Probabilistic Sharpe Ratio": lean_probabilistic_sharpe_ratio(
            pl.Series(perf, dtype=pl.Float64), 1.0 / math.sqrt(periods), rf / periods
        ),
        "Alpha": 0.0 if beta == 0 else annual - (rf + beta * (annual_bench - rf)),
        "Beta": beta,
        "Annual Standard Deviation": deviation,
        "Annual Variance": variance,
        "Information Ratio": 0.0 if tracking == 0 else (annual - annual_bench) / tracking,
        "Tracking Error": tracking,
        "Treynor Ratio": 0.0 if beta == 0 else (annual - rf) / beta,
    }


def lean_portfolio_statistics(
    daily: pl.DataFrame,
    profit_loss: list[float],
    capital: float,
    risk_free_rate: float = 0.0,
    periods_per_year: int = TRADING_DAYS_PER_YEAR,
) -> dict[str, float]:
    """``PortfolioStatistics`` of one strategy: ``daily`` is its ``backtest.daily`` rows (``date,
    portfolio_return, benchmark_return, portfolio_value``), ``profit_loss`` its transaction
    records in order (:func:`lean_transactions`), ``capital`` its starting cash.

    The equity series is the capital on the first date, then ``portfolio_value`` each day. As in
    ``StatisticsBuilder`` the first daily return of both the strategy and the benchmark is left
    out (LEAN drops day 1); with fewer than two returns left every statistic but the equities is
    0. ``risk_free_rate`` is LEAN's average annual risk-free rate.
    """
    require_columns(
        daily,
        ["date", "portfolio_return", "benchmark_return", "portfolio_value"],
        "daily",
        MetricsInputError,
    )
    frame = daily.sort("date")
    dates = [frame["date"][0], *frame["date"].to_list()]
    equity = [capital, *frame["portfolio_value"].to_list()]
    out = dict.fromkeys(LEAN_STATISTICS[1:6] + LEAN_STATISTICS[8:22], 0.0)
    out.update({"Start Equity": capital, "End Equity": equity[-1], "Drawdown Recovery": 0.0})
    perf = frame["portfolio_return"].to_list()[1:]
    bench = frame["benchmark_return"].to_list()[1:]
    if capital == 0 or len(perf) < 2 or len(bench) < 2:
        return out
    out.update(_trade_statistics(profit_loss, capital))
    out["Net Profit"] = equity[-1] / capital - 1.0
    years = (dates[-1] - dates[0]).days / 365.0
    growth = (equity[-1] / capital) ** (1.0 / years) - 1.0 if years else 0.0
    out["Compounding Annual Return"] = growth if math.isfinite(growth) else 0.0
    out.update(_relative_block(perf, bench, risk_free_rate, periods_per_year))
    out["Drawdown"], out["Drawdown Recovery"] = _drawdown_metrics(dates, equity)
    return out


@dataclass
class _SymbolCapacity:
    """One symbol's state in ``SymbolCapacity.cs`` (daily resolution)."""

    sale_volume: float = 0.0
    trades: int = 0
    dollar_volume: float = 0.0  # market dollar volume gathered since the last reset
    scale: float = 0.0  # the resolution scale factor, set once a bar is included
    discount: float = 1.0  # the fast-trading volume discount of the latest order
    last_order: date | None = None
    reset_pending: bool = False

    @property
    def market_capacity(self) -> float:
        return self.dollar_volume * self.scale


def _snapshot(
    state: dict[str, _SymbolCapacity],
    holdings_value: dict[str, float],
    portfolio_value: float,
    capacity: float,
) -> tuple[float, str] | None:
    """One ``CapacityEstimate.UpdateMarketCapacity`` snapshot: the new (unrounded) capacity and
    the lowest-capacity symbol, or None when LEAN returns without one."""
    total_sales = sum(s.sale_volume for s in state.values())
    if portfolio_value == 0 or not state:
        return None
    ticker = min(state, key=lambda t: state[t].market_capacity)  # first minimum, as OrderBy
    smallest = state[ticker]
    share_of_sales = smallest.sale_volume / total_sales if total_sales else 0.0
    share_of_holdings = abs(holdings_value.get(ticker, 0.0)) / portfolio_value
    scaling = max(share_of_sales, share_of_holdings)
    daily_capacity = smallest.market_capacity / smallest.trades
    new = capacity if scaling == 0 else daily_capacity / scaling
    if capacity != 0:
        new = 0.33 * new + capacity * 0.66
    return new, ticker


def _order_event(s: _SymbolCapacity, day: date, shares: float, price: float) -> None:
    """``SymbolCapacity.OnOrderEvent`` for a daily fill."""
    s.sale_volume += price * abs(shares)
    minutes = 1440.0 * ((day - s.last_order).days if s.last_order else 1)
    s.discount = min(1.0, max(0.20, 2.0 * minutes / _MINUTES_PER_SESSION))
    if s.reset_pending:
        s.dollar_volume, s.trades, s.reset_pending = 0.0, 0, False
    s.trades += 1
    s.last_order = day


_EPOCH = date(1970, 1, 1)


class _DailyBars:
    """(close, volume) of a ticker's bar on a day (None, None without one), for lookups that
    walk the days forward, as the capacity loop does.

    ``bars``: ticker, date, close, volume, one row per (ticker, date). Each ticker keeps a cursor
    into its sorted dates: a lookup steps it forward (or bisects after a gap), and only the bars
    looked up become Python floats (a dict of every bar of every traded ticker was millions of
    Python tuples at 7,000 tickers, most never read).
    """

    def __init__(self, bars: pl.DataFrame) -> None:
        ordered = bars.select("ticker", pl.col("date").cast(pl.Date), "close", "volume")
        if not is_sorted_by(ordered, ["ticker", "date"]):  # curated.prices already is
            last = pl.any_horizontal(
                pl.col(c).ne_missing(pl.col(c).shift(-1)) for c in ("ticker", "date")
            )
            ordered = ordered.sort("ticker", "date", maintain_order=True).filter(
                last.fill_null(True)  # a repeated bar: the later row, as a dict keeps it
            )
        runs = ordered.select(pl.col("ticker").rle()).unnest("ticker")
        ends = runs["len"].cum_sum().to_list()
        self._span = {
            t: (end - n, end) for t, n, end in zip(runs["value"], runs["len"], ends, strict=True)
        }
        self._dates = ordered["date"].to_physical().to_numpy()
        self._close = ordered["close"].cast(pl.Float64).to_numpy()
        self._has_close = ordered["close"].is_not_null().to_numpy()
        self._volume = ordered["volume"].cast(pl.Float64).to_numpy()
        self._has_volume = ordered["volume"].is_not_null().to_numpy()
        self._cursor: dict[str, int] = {}

    def restart(self) -> _DailyBars:
        """The same bars with every cursor back at its ticker's first day."""
        self._cursor = {}
        return self

    def get(self, ticker: str, day: int) -> tuple[float | None, float | None]:
        """The bar of ``ticker`` on ``day`` (days since 1970-01-01, never decreasing for one
        ticker)."""
        span = self._span.get(ticker)
        if span is None:
            return None, None
        start, end = span
        dates = self._dates
        pos = self._cursor.get(ticker, start)
        if pos < end and dates[pos] < day:
            if pos + 1 < end and dates[pos + 1] < day:
                pos = start + int(np.searchsorted(dates[start:end], day))
            else:
                pos += 1
            self._cursor[ticker] = pos
        if pos >= end or dates[pos] != day:
            return None, None
        close = float(self._close[pos]) if self._has_close[pos] else None
        volume = float(self._volume[pos]) if self._has_volume[pos] else None
        return close, volume


def estimated_strategy_capacity(
    fills: pl.DataFrame, bars: pl.DataFrame | _DailyBars, daily: pl.DataFrame
) -> tuple[float, str | None]:
    """LEAN's Estimated Strategy Capacity (rounded to the nearest 1,000, as its ``Capacity``
    property) and Lowest Capacity Asset for one strategy.

    ``fills``: its ``backtest.fills`` rows; ``bars``: ``ticker, date, close, volume`` of the
    traded tickers; ``daily``: its ``date, portfolio_value`` rows (the days the loop runs on).
    Each day: the day's orders (``OnOrderEvent``), then each monitored symbol adds
    ``close * volume * discount`` of its bar while the bar is the order's day or the next
    calendar day (a daily bar's time rounded up), then a snapshot every
    ``max(min(days - 1, 7), 1)`` days and a forced one after the last day.
    """
    if isinstance(bars, pl.DataFrame):
        require_columns(bars, ["ticker", "date", "close", "volume"], "bars", MetricsInputError)
    frame = daily.sort("date")
    if frame.height == 0 or fills.height == 0:
        return 0.0, None
    start, end = frame["date"][0], frame["date"][-1]
    period = timedelta(days=max(min((end - start).days - 1, 7), 1))
    by_day: dict[date, list[tuple[str, float, float, float]]] = {}
    for day, ticker, shares, price, after in fills.select(
        "rebalance_date", "ticker", "shares", "execution_price", "shares_after"
    ).iter_rows():
        by_day.setdefault(day, []).append((ticker, shares, price, after))
    bar = _DailyBars(bars) if isinstance(bars, pl.DataFrame) else bars.restart()
    state: dict[str, _SymbolCapacity] = {}
    monitored: dict[str, None] = {}
    held: dict[str, float] = {}
    last_close: dict[str, float] = {}
    capacity, lowest, next_snapshot = 0.0, None, start + period
    values = dict(frame.select("date", "portfolio_value").rows())
    for day in frame["date"].to_list():
        for ticker, shares, price, after in by_day.get(day, []):
            _order_event(state.setdefault(ticker, _SymbolCapacity()), day, shares, price)
            monitored[ticker] = None
            held[ticker] = after
        number = (day - _EPOCH).days
        for ticker in state:
            close, _ = bar.get(ticker, number)
            if close is not None:
                last_close[ticker] = close
        for ticker in list(monitored):
            close, volume = bar.get(ticker, number)
            if close is None or not volume:
                continue
            s = state[ticker]
            if day in (s.last_order, s.last_order + timedelta(days=1)):
                s.scale = _DAILY_SCALE
                s.dollar_volume += close * s.discount * volume
            else:
                del monitored[ticker]
        forced = day == end
        if forced or (day >= next_snapshot and state):
            value = {t: held.get(t, 0.0) * last_close.get(t, 0.0) for t in state}
            result = _snapshot(state, value, values[day] or 0.0, capacity)
            if result is None:
                continue
            capacity, lowest = result
            for ticker, s in list(state.items()):
                if abs(held.get(ticker, 0.0)) > 0 or day < s.last_order + timedelta(_EFFECT_DAYS):
                    s.sale_volume, s.reset_pending = 0.0, True
                else:
                    del state[ticker]
                    monitored.pop(ticker, None)
            next_snapshot = day + period
    return _round_half_away(capacity / 1000.0) * 1000.0, lowest


def _round_half_away(x: float) -> float:
    return math.copysign(math.floor(abs(x) + 0.5), x)


def _significant(value: float, digits: int) -> float:
    """``RoundToSignificantDigits``: ``scale * round(value / scale, digits)``."""
    if value == 0:
        return 0.0
    scale = 10.0 ** (math.floor(math.log10(abs(value))) + 1)
    return scale * round(value / scale, digits)


def display(statistic: str, value: float | None, text: str | None = None) -> str:
    """A LEAN statistic as ``StatisticsBuilder.GetSummary`` prints it (its rounding digits)."""
    if statistic == "Lowest Capacity Asset":
        return text or ""
    kind, digits = _DISPLAY[statistic]
    if value is None:
        return ""
    if kind == "percent":
        return f"{round(value * 100, digits):.{digits}f}%"
    if kind == "money":
        return f"${value:.2f}"
    if kind == "capacity":
        return f"${_significant(value, digits):,.0f}"
    if kind == "count":
        return f"{value:.0f}"
    return f"{round(value, digits):.{digits}f}"


def lean_statistics(
    daily: pl.DataFrame,
    fills: pl.DataFrame,
    bars: pl.DataFrame,
    risk_free_rate: float = 0.0,
    periods_per_year: int = TRADING_DAYS_PER_YEAR,
) -> pl.DataFrame:
    """``backtest.lean_statistics``: ``strategy, statistic, value, display`` for every strategy
    with orders in ``fills`` (``backtest.fills``; a blend places none and is left out).

    ``daily``: backtest.daily (``portfolio_value`` in currency); ``bars``: ``ticker, date, close,
    volume`` (curated.prices). ``value`` is the unrounded statistic (a fraction for a percentage;
    null for Lowest Capacity Asset, whose ticker is in ``display``); ``display`` is LEAN's print.
    """
    require_columns(fills, ["strategy", *FILL_COLUMNS], "backtest.fills", MetricsInputError)
    require_columns(bars, ["ticker", "date", "close", "volume"], "bars", MetricsInputError)
    # one index of the bars for every strategy: each looks up only the tickers it trades
    indexed = _DailyBars(bars) if fills.height else None
    rows = []
    for (name,), own_fills in fills.sort("strategy").group_by("strategy", maintain_order=True):
        part = daily.filter(pl.col("strategy") == name).sort("date")
        capital = starting_capital(part)
        if capital is None:
            raise MetricsInputError(
                f"backtest.daily has no portfolio_value rows for strategy {name!r}, which has "
                f"{own_fills.height} fills: LEAN's statistics need its equity in currency"
            )
        records = lean_transactions(own_fills)["profit_loss"].to_list()
        stats = lean_portfolio_statistics(part, records, capital, risk_free_rate, periods_per_year)
        stats["Total Orders"] = float(own_fills.height)
        stats["Total Fees"] = float(own_fills["commission"].fill_null(0.0).sum())
        assert indexed is not None
        stats["Estimated Strategy Capacity"], lowest = estimated_strategy_capacity(
            own_fills, indexed, part
        )
        for statistic in LEAN_STATISTICS:
            value = None if statistic == "Lowest Capacity Asset" else stats[statistic]
            rows.append((name, statistic, value, display(statistic, value, lowest)))
    return pl.DataFrame(rows, schema=LEAN_SCHEMA, orient="row")

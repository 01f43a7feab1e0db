"""Technical signals on daily prices: indicators, entry/exit rules and signal-driven weights.

Every signal takes a ``curated.prices`` frame::

    ticker | date | open | high | low | close | adj_close | volume | daily_return

and returns one row per (ticker, date) of that frame::

    ticker | date | entry (bool) | exit (bool) | signal_strength (f64, higher = stronger)

Timing: the row for day t uses prices up to and including the close of t (nothing later), so a
signal is known after t's close and may trade at t+1 at the earliest. :func:`signal_to_weights`
applies that shift; callers that use the signals frame directly must shift it themselves.

Prices are put on the ``adj_close`` basis first (:func:`adjusted_ohlcv`), so a split is not read
as a crash. Indicators are polars expressions evaluated per ticker with ``.over(by)`` on a
frame sorted by (ticker, date); ``by`` is ``"ticker"`` unless given (the signals themselves
group by an integer key per ticker, which is cheaper than the string). Parameters are checked
when a signal object is built (``TrendFollowing(fast=0)`` raises ``ValueError`` naming
``fast``), so a strategy file can be validated before any data is read; the plain functions
build the object and call it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, NamedTuple

import numpy as np
import polars as pl

from quant_pipeline.core.data.calendar import TRADING_DAYS_PER_YEAR
from quant_pipeline.core.data.frames import is_sorted_by, require_columns
from quant_pipeline.core.data.schema import OHLC_COLUMNS, PRICE_COLUMNS

SIGNAL_COLUMNS: tuple[str, ...] = ("ticker", "date", "entry", "exit", "signal_strength")

_T = "ticker"
# The signals group by an integer per ticker (its run in the (ticker, date)-sorted bars) rather
# than by the ticker string: hashing and comparing 15M strings was a third of a signal's time.
_KEY = "_ticker_key"


def _keyed(adjusted: pl.DataFrame) -> pl.DataFrame:
    """``adjusted`` (in (ticker, date) order) with ``_KEY``, one integer per ticker."""
    return adjusted.with_columns(pl.col(_T).rle_id().alias(_KEY))


# --------------------------------------------------------------------------------------------
# validation helpers


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"parameter {name!r} must be an integer >= {minimum}, got {value!r}")


def _check_float(
    name: str, value: Any, low: float, high: float = math.inf, *, low_open: bool = False
) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and value <= high
    if not ok:
        bracket = "(" if low_open else "["
        raise ValueError(
            f"parameter {name!r} must be a number in {bracket}{low}, {high}], got {value!r}"
        )


# --------------------------------------------------------------------------------------------
# preparation and indicator expressions


def adjusted_ohlcv(prices: pl.DataFrame) -> pl.DataFrame:
    """Prices on the ``adj_close`` basis, sorted by (ticker, date).

    Expects curated.prices columns (ticker, date, open, high, low, close, adj_close, volume).
    ``close`` becomes ``adj_close``; open/high/low are scaled by ``adj_close / close`` and
    volume divided by it (so a 4:1 split leaves volume comparable across the split). A null
    adj_close means factor 1; null open/high/low fall back to the close, null volume to 0.
    Uses only each row's own values (no look-ahead).
    """
    require_columns(prices, PRICE_COLUMNS, "prices")
    if prices.is_empty():
        return prices.select(PRICE_COLUMNS[:2]).with_columns(
            [pl.lit(None, pl.Float64).alias(c) for c in (*OHLC_COLUMNS, "volume")]
        )
    nulls = prices.filter(pl.col("close").is_null() | pl.col("ticker").is_null())
    if nulls.height:
        raise ValueError(
            f"prices: {nulls.height} row(s) with null ticker or close, e.g. "
            f"{nulls.select('ticker', 'date').head(3).to_dicts()}"
        )
    factor = (
        pl.when(pl.col("adj_close").is_not_null() & (pl.col("close") > 0))
        .then(pl.col("adj_close") / pl.col("close"))
        .otherwise(1.0)
    )
    close = pl.col("close").cast(pl.Float64)
    out = prices.select(
        "ticker",
        "date",
        (pl.col("open").fill_null(close) * factor).alias("open"),
        (pl.col("high").fill_null(close) * factor).alias("high"),
        (pl.col("low").fill_null(close) * factor).alias("low"),
        (close * factor).alias("close"),
        (pl.col("volume").fill_null(0.0) / factor).alias("volume"),
    )
    # curated.prices already is in (ticker, date) order: an O(n) check instead of a 15M-row sort
    return out if is_sorted_by(out, ["ticker", "date"]) else out.sort("ticker", "date")


def ema(col: str, span: int, by: str = _T) -> pl.Expr:
    """Exponential moving average of ``col`` (alpha = 2 / (span + 1)), per ticker.

    Recursive form (``adjust=False``), null for the first ``span - 1`` rows of a ticker so a
    crossover cannot fire during warm-up. Uses rows up to and including the current one.
    """
    _check_int("span", span, 1)
    return pl.col(col).ewm_mean(span=span, adjust=False, min_samples=span).over(by)


def sma(col: str, n: int, by: str = _T) -> pl.Expr:
    """Simple moving average of ``col`` over the last ``n`` rows (current included), per ticker."""
    _check_int("n", n, 1)
    return pl.col(col).rolling_mean(window_size=n).over(by)


def true_range(by: str = _T) -> pl.Expr:
    """max(high - low, |high - previous close|, |low - previous close|), per ticker."""
    prev_close = pl.col("close").shift(1)
    return pl.max_horizontal(
        pl.col("high") - pl.col("low"),
        (pl.col("high") - prev_close).abs(),
        (pl.col("low") - prev_close).abs(),
    ).over(by)


def atr(n: int, by: str = _T) -> pl.Expr:
    """Wilder's average true range: the true range smoothed with alpha = 1/n, per ticker.

    Seeded with the first true range rather than the mean of the first n (the difference decays
    as (1 - 1/n)^k); null for a ticker's first ``n - 1`` rows.
    """
    _check_int("n", n, 1)
    return true_range(by).ewm_mean(alpha=1.0 / n, adjust=False, min_samples=n).over(by)


def rolling_high(n: int, col: str = "high", by: str = _T) -> pl.Expr:
    """Highest ``col`` over the last ``n`` rows (current included), per ticker."""
    _check_int("n", n, 1)
    return pl.col(col).rolling_max(window_size=n).over(by)


def rolling_low(n: int, col: str = "low", by: str = _T) -> pl.Expr:
    """Lowest ``col`` over the last ``n`` rows (current included), per ticker."""
    _check_int("n", n, 1)
    return pl.col(col).rolling_min(window_size=n).over(by)


def relative_strength(
    frame: pl.DataFrame, n: int = TRADING_DAYS_PER_YEAR, col: str = "close", by: str = _T
) -> pl.DataFrame:
    """Add ``rs_return`` (return of ``col`` over the last ``n`` rows) and ``rs_percentile``.

    ``frame``: (ticker, date, ``col``) sorted by (ticker, date). ``rs_percentile`` is, per date,
    100 x the share of tickers (with a return that day) whose return is <= this one's: the best
    ticker scores 100. Uses prices up to the current date. A frame function rather than a single
    expression because the two windows (per ticker, then per date) cannot nest in polars.
    ``by``: the column naming the ticker (as for the indicators above).
    """
    _check_int("n", n, 1)
    require_columns(frame, ("ticker", "date", col, by), "relative_strength frame")
    ret = (pl.col(col) / pl.col(col).shift(n) - 1.0).over(by)
    return frame.with_columns(rs_return=ret).with_columns(
        rs_percentile=(100.0 * pl.col("rs_return").rank("max") / pl.col("rs_return").count()).over(
            "date"
        )
    )


def _finish(frame: pl.DataFrame, entry: pl.Expr, exit_: pl.Expr, strength: pl.Expr) -> pl.DataFrame:
    return frame.select(
        "ticker",
        "date",
        entry.fill_null(False).alias("entry"),
        exit_.fill_null(False).alias("exit"),
        strength.cast(pl.Float64).alias("signal_strength"),
    )


# --------------------------------------------------------------------------------------------
# signals


@dataclass(frozen=True)
class TrendFollowing:
    """Fast/slow EMA crossover with a chandelier (ATR) stop.

    entry at t: fast EMA crosses above the slow EMA (fast - slow <= 0 at t-1, > 0 at t).
    exit at t (first one after an entry): fast crosses below slow, or
    close_t < highest close since the entry day - atr_stop x ATR(atr_n)_t.
    After a stop exit there is no re-entry until the next upward cross.
    signal_strength: fast / slow - 1.

    The stop is stateful, yet needs no loop: a position can only open on an upward cross and an
    upward cross cannot happen while one is open (it needs fast <= slow the day before, which is
    itself a downward cross, an exit). So each stretch between consecutive upward crosses holds at
    most one trade, starting on its first day, and "highest close since entry" is a cumulative
    max over (ticker, stretch); the exit is the first exit condition in the stretch.
    """

    fast: int = 50
    slow: int = 200
    atr_n: int = 14
    atr_stop: float = 3.0

    def __post_init__(self) -> None:
        _check_int("fast", self.fast, 1)
        _check_int("slow", self.slow, 2)
        if self.fast >= self.slow:
            raise ValueError(
                f"parameter 'fast' must be smaller than 'slow', got fast={self.fast}, "
                f"slow={self.slow}"
            )
        _check_int("atr_n", self.atr_n, 1)
        _check_float("atr_stop", self.atr_stop, 0.0, low_open=True)

    def __call__(self, prices: pl.DataFrame) -> pl.DataFrame:
        return self.on_adjusted(adjusted_ohlcv(prices))

    def on_adjusted(self, adjusted: pl.DataFrame) -> pl.DataFrame:
        """The signal on a frame :func:`adjusted_ohlcv` returned (several signals share one)."""
        df = _keyed(adjusted).with_columns(
            _fast=ema("close", self.fast, _KEY),
            _slow=ema("close", self.slow, _KEY),
            _atr=atr(self.atr_n, _KEY),
        )
        diff = pl.col("_fast") - pl.col("_slow")
        df = df.with_columns(
            _up=((diff > 0) & (diff.shift(1) <= 0)).over(_KEY).fill_null(False),
            _down=((diff <= 0) & (diff.shift(1) > 0)).over(_KEY).fill_null(False),
        ).with_columns(_seg=pl.col("_up").cast(pl.Int64).cum_sum().over(_KEY))
        # one integer per (ticker, stretch): the frame is in (ticker, date) order, so a stretch
        # starts on a ticker's first row or an upward cross (hashing (ticker, _seg) pairs of
        # 15M rows cost seconds)
        ticker = pl.col(_KEY)
        df = df.with_columns(
            _run=((ticker != ticker.shift(1)).fill_null(True) | pl.col("_up")).cum_sum()
        )
        seg = "_run"
        df = df.with_columns(_peak=pl.col("close").cum_max().over(seg)).with_columns(
            _cond=(
                (
                    pl.col("_down")
                    | (
                        pl.col("close") < pl.col("_peak") - self.atr_stop * pl.col("_atr")
                    ).fill_null(False)
                )
                & (pl.col("_seg") > 0)
                & ~pl.col("_up")
            )
        )
        prior = pl.col("_cond").cast(pl.Int64).cum_sum().over(seg) - pl.col("_cond").cast(pl.Int64)
        return _finish(
            df,
            entry=pl.col("_up"),
            exit_=pl.col("_cond") & (prior == 0),
            strength=pl.col("_fast") / pl.col("_slow") - 1.0,
        )


@dataclass(frozen=True)
class CanSlim:
    """CAN SLIM-style score from price, volume and (optionally) earnings.

    Criteria at day t (each True/False; a null input counts as False):
      1. earnings acceleration — only when a ``fundamentals_values`` frame is given: the latest
         ``quarterly_earnings_growth`` known at t (factors.values row with rebalance_date <= t) is
         > 0 and greater than the previous different value for that ticker;
      2. relative strength: ``rs_percentile`` (return over ``rs_n`` days) >= ``rs_min``;
      3. close >= (1 - ``high_within``) x highest high of the last ``high_n`` days (t included);
      4. volume_t >= ``volume_mult`` x mean volume of the ``volume_n`` days before t.
    signal_strength = satisfied / number of criteria (3 or 4); entry when all hold.
    exit: close < its ``exit_sma``-day simple moving average (O'Neil's sell rule; the 7-8 % loss
    stop belongs to :func:`signal_to_weights` ``stop_loss``).
    """

    rs_n: int = TRADING_DAYS_PER_YEAR
    rs_min: float = 80.0
    high_n: int = TRADING_DAYS_PER_YEAR
    high_within: float = 0.15
    volume_n: int = 50
    volume_mult: float = 1.5
    exit_sma: int = 50

    def __post_init__(self) -> None:
        _check_int("rs_n", self.rs_n, 1)
        _check_float("rs_min", self.rs_min, 0.0, 100.0)
        _check_int("high_n", self.high_n, 1)
        _check_float("high_within", self.high_within, 0.0, 1.0)
        _check_int("volume_n", self.volume_n, 1)
        _check_float("volume_mult", self.volume_mult, 0.0)
        _check_int("exit_sma", self.exit_sma, 1)

    def __call__(
        self, prices: pl.DataFrame, fundamentals_values: pl.DataFrame | None = None
    ) -> pl.DataFrame:
        return self.on_adjusted(adjusted_ohlcv(prices), fundamentals_values)

    def on_adjusted(
        self, adjusted: pl.DataFrame, fundamentals_values: pl.DataFrame | None = None
    ) -> pl.DataFrame:
        """The signal on a frame :func:`adjusted_ohlcv` returned (several signals share one)."""
        accel = None if fundamentals_values is None else _earnings_acceleration(fundamentals_values)
        return self._on_ranked(relative_strength(_keyed(adjusted), self.rs_n, by=_KEY), accel)

    def _on_ranked(self, df: pl.DataFrame, accel: pl.DataFrame | None) -> pl.DataFrame:
        """The criteria on bars (with ``_KEY``) and their ``rs_percentile`` (the one
        cross-sectional input: the rest is per ticker, so whole tickers may go in batches)."""
        avg_vol = pl.col("volume").shift(1).rolling_mean(window_size=self.volume_n).over(_KEY)
        criteria = [
            pl.col("rs_percentile") >= self.rs_min,
            pl.col("close") >= (1.0 - self.high_within) * rolling_high(self.high_n, by=_KEY),
            pl.col("volume") >= self.volume_mult * avg_vol,
        ]
        if accel is not None:
            df = _join_earnings_acceleration(df, accel)
            criteria.insert(0, pl.col("_accel"))
        flags = [c.fill_null(False) for c in criteria]
        return _finish(
            df,
            entry=pl.all_horizontal(flags),
            exit_=pl.col("close") < sma("close", self.exit_sma, _KEY),
            strength=pl.sum_horizontal([f.cast(pl.Float64) for f in flags]) / len(flags),
        )


def _earnings_acceleration(values: pl.DataFrame) -> pl.DataFrame:
    """(ticker, date, _accel) from factors.values rows, sorted by date: the latest quarterly
    earnings growth is positive and above the previous different value of the ticker."""
    require_columns(
        values,
        ("rebalance_date", "ticker", "quarterly_earnings_growth"),
        "fundamentals_values (factors.values)",
    )
    g = pl.col("quarterly_earnings_growth")
    changed = g.ne_missing(g.shift(1)).over(_T)
    return (
        values.select("ticker", "rebalance_date", g.cast(pl.Float64))
        .unique(["ticker", "rebalance_date"], keep="last")
        .sort("ticker", "rebalance_date")
        .with_columns(_changed=changed)
        .with_columns(
            _prev=pl.when("_changed").then(g.shift(1)).otherwise(None).forward_fill().over(_T)
        )
        .select(
            "ticker",
            pl.col("rebalance_date").alias("date"),
            ((g > 0) & (g > pl.col("_prev"))).alias("_accel"),
        )
        .sort("date")
    )


def _join_earnings_acceleration(df: pl.DataFrame, accel: pl.DataFrame) -> pl.DataFrame:
    """``df`` (bars, (ticker, date) order) with ``_accel``, the latest value known on each
    day. An as-of join by ticker needs the dates in order within each ticker only, which bars
    and ``accel`` (in date order) both are: no sort (sorting 14M rows by date and back was 80%
    of CAN SLIM's time)."""

    def join(bars: pl.DataFrame) -> pl.DataFrame:
        return bars.join_asof(
            accel, on="date", by="ticker", strategy="backward", check_sortedness=False
        )

    if is_sorted_by(df, ["ticker", "date"]):
        return join(df)
    return join(df.with_row_index("_row").sort("ticker", "date")).sort("_row").drop("_row")


@dataclass(frozen=True)
class LivermoreBreakout:
    """Tight consolidation, then a close above it on volume.

    base at t = the ``base_days`` days before t: base_high = max high, base_low = min low.
    entry at t: (base_high - base_low) / base_low <= ``max_range`` and close_t > base_high and
    volume_t >= ``volume_mult`` x mean volume of the ``volume_n`` days before t (default: the
    base). exit at t: close_t < base_low (the breakout failed or the trend broke: a trailing
    ``base_days``-day low). signal_strength = volume_t / that mean volume.
    """

    base_days: int = 20
    max_range: float = 0.10
    volume_mult: float = 1.5
    volume_n: int | None = None

    def __post_init__(self) -> None:
        _check_int("base_days", self.base_days, 2)
        _check_float("max_range", self.max_range, 0.0, low_open=True)
        _check_float("volume_mult", self.volume_mult, 0.0)
        if self.volume_n is not None:
            _check_int("volume_n", self.volume_n, 1)

    def __call__(self, prices: pl.DataFrame) -> pl.DataFrame:
        return self.on_adjusted(adjusted_ohlcv(prices))

    def on_adjusted(self, adjusted: pl.DataFrame) -> pl.DataFrame:
        """The signal on a frame :func:`adjusted_ohlcv` returned (several signals share one)."""
        n = self.base_days
        vn = self.volume_n or n
        df = _keyed(adjusted).with_columns(
            _bh=pl.col("high").shift(1).rolling_max(window_size=n).over(_KEY),
            _bl=pl.col("low").shift(1).rolling_min(window_size=n).over(_KEY),
            _av=pl.col("volume").shift(1).rolling_mean(window_size=vn).over(_KEY),
        )
        tight = (pl.col("_bh") - pl.col("_bl")) / pl.col("_bl") <= self.max_range
        return _finish(
            df,
            entry=tight
            & (pl.col("close") > pl.col("_bh"))
            & (pl.col("volume") >= self.volume_mult * pl.col("_av")),
            exit_=pl.col("close") < pl.col("_bl"),
            strength=pl.when(pl.col("_av") > 0).then(pl.col("volume") / pl.col("_av")),
        )


@dataclass(frozen=True)
class CupAndHandle:
    """O'Neil's cup with handle, as an exact rule on daily bars (weeks = 5 trading days).

    Calibrated against the published definition (W. O'Neil, *How to Make Money in Stocks*, 4th
    ed., 2009, ch. 2, "Cup with handle"): a cup 12-33% deep lasting 7-65 weeks, a handle of 1-4+
    weeks in the upper half of the cup on lighter volume, and a breakout above the handle's high
    on volume at least 40-50% above average. Two guards the book states only in words are
    numbers here: the right rim within 15% of the left and "U, not V" as a roundness limit.

    For a candidate breakout day t (indices are trading days of one ticker):
      R (right rim) = the day of the highest high in [t - handle_max_days - 1, t - 1] (latest on
          ties); the handle is R+1 .. t-1 and must last ``handle_min_days``..``handle_max_days``
          (5-25 days: 1 to 4+ weeks).
      L (left rim)  = the day of the highest high in [R - cup_max_days, R - cup_min_days], so the
          cup L..R lasts ``cup_min_days``..``cup_max_days`` (7-65 weeks by default).
      cup_low = lowest low in L+1 .. R-1, with
        * depth 1 - cup_low / high_L in [``cup_depth_min``, ``cup_depth_max``] (12-33 %),
        * no high inside the cup above high_L,
        * right rim near the left one: |high_R / high_L - 1| <= ``rim_tolerance`` (15%; a
          handle in the upper half of a cup at most 33% deep has its high at most ~16% under
          the left rim),
        * rounded, not V-shaped: (mean close over L..R - cup_low) / (high_L - cup_low)
          <= ``roundness`` (a V scores 0.5, a half-sine 0.36, a half-circle 0.21; 0.5 rejects
          cups sharper than a V).
      handle: lowest low in R+1 .. t-1 is >= (1 - ``handle_depth_max``) x high_R and in the upper
        half of the cup (above cup_low + (high_L - cup_low) / 2); mean handle volume
        <= ``handle_volume_ratio`` x mean volume over the cup (lighter volume).
      breakout: close_t > high_R (the handle high) and volume_t >= ``volume_mult`` x mean volume
        of the ``volume_n`` days before t (1.4: 40% above average, the low end of O'Neil's
        40-50%).
    entry = all of the above; exit: close < ``exit_sma``-day moving average.
    signal_strength = volume_t / mean volume of the ``volume_n`` days before t.

    The first calibration (depth to 35%, rims within 5%, roundness 0.40, handle to 20 days,
    volume 1.5x) fired 7 times in 5 years of the S&P 500 files (505 tickers); these defaults
    fire 95 times there (3.9 per 100 ticker-years), see docs/research.md.

    Uses bars up to t only. Implemented with numpy on each ticker's arrays (range max/min by a
    sparse table, means by prefix sums), vectorised over days; the loop is over tickers because
    the windows are anchored at data-dependent pivots (R, L), which rolling windows cannot express.
    """

    cup_min_days: int = 35
    cup_max_days: int = 325
    cup_depth_min: float = 0.12
    cup_depth_max: float = 0.33
    rim_tolerance: float = 0.15
    roundness: float = 0.50
    handle_min_days: int = 5
    handle_max_days: int = 25
    handle_depth_max: float = 0.12
    handle_volume_ratio: float = 1.0
    volume_n: int = 50
    volume_mult: float = 1.4
    exit_sma: int = 50

    def __post_init__(self) -> None:
        _check_int("cup_min_days", self.cup_min_days, 3)
        _check_int("cup_max_days", self.cup_max_days, self.cup_min_days)
        _check_float("cup_depth_min", self.cup_depth_min, 0.0, 1.0)
        _check_float("cup_depth_max", self.cup_depth_max, self.cup_depth_min, 1.0)
        _check_float("rim_tolerance", self.rim_tolerance, 0.0, 1.0)
        _check_float("roundness", self.roundness, 0.0, 1.0, low_open=True)
        _check_int("handle_min_days", self.handle_min_days, 1)
        _check_int("handle_max_days", self.handle_max_days, self.handle_min_days)
        _check_float("handle_depth_max", self.handle_depth_max, 0.0, 1.0)
        _check_float("handle_volume_ratio", self.handle_volume_ratio, 0.0, low_open=True)
        _check_int("volume_n", self.volume_n, 1)
        _check_float("volume_mult", self.volume_mult, 0.0)
        _check_int("exit_sma", self.exit_sma, 1)

    def __call__(self, prices: pl.DataFrame) -> pl.DataFrame:
        return self.on_adjusted(adjusted_ohlcv(prices))

    def on_adjusted(self, adjusted: pl.DataFrame) -> pl.DataFrame:
        """The signal on a frame :func:`adjusted_ohlcv` returned (several signals share one)."""
        df = _keyed(adjusted)
        h = df["high"].to_numpy().astype(np.float64, copy=False)
        lo = df["low"].to_numpy().astype(np.float64, copy=False)
        c = df["close"].to_numpy().astype(np.float64, copy=False)
        v = df["volume"].to_numpy().astype(np.float64, copy=False)
        entry = np.zeros(df.height, dtype=bool)
        strength = np.full(df.height, np.nan)
        # the frame is in (ticker, date) order: each ticker is one block of rows
        runs = df.select(pl.col(_T).rle().struct.field("len")).to_series()
        ends = np.cumsum(runs.to_numpy().astype(np.int64))
        for a, b in _row_batches(ends, _CUP_BATCH_ROWS):
            sl = slice(a, b)
            entry[sl], strength[sl] = self._batch(
                h[sl], lo[sl], c[sl], v[sl], ends[(ends > a) & (ends <= b)] - a
            )
        df = df.with_columns(_entry=pl.Series(entry), _s=pl.Series(strength, nan_to_null=True))
        return _finish(
            df,
            entry=pl.col("_entry"),
            exit_=pl.col("close") < sma("close", self.exit_sma, _KEY),
            strength=pl.col("_s"),
        )

    def _batch(
        self, h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray, ends: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Entries and strengths of consecutive tickers at once; ``ends``: the row after each
        ticker's last. Every window stays inside its ticker (bounded below by the ticker's first
        row), and the means use each ticker's own prefix sums, so each ticker gets exactly what
        it would alone."""
        n = h.size
        entry = np.zeros(n, dtype=bool)
        t = np.arange(n)
        starts = np.concatenate([np.zeros(1, dtype=np.int64), ends[:-1]])
        sizes = ends - starts
        first = np.repeat(starts, sizes)  # per row: its ticker's first row
        q = np.repeat(np.arange(ends.size), sizes)  # per row: its ticker's number
        span = self.cup_max_days + self.handle_max_days + 2
        hmax = _SparseTable(h, span, "max")
        lmin = _SparseTable(lo, span, "min")
        cs, vs = _ticker_prefix_sums(c, starts, ends), _ticker_prefix_sums(v, starts, ends)

        def mean(prefix: np.ndarray, i: np.ndarray, j: np.ndarray, qq: np.ndarray) -> np.ndarray:
            return (prefix[j + qq + 1] - prefix[i + qq]) / (j - i + 1)

        ok = t - self.handle_max_days - 1 >= first
        ok &= t - self.handle_max_days - 1 - self.cup_min_days >= first
        t_ = t[ok]
        r = hmax.arg(t_ - self.handle_max_days - 1, t_ - 1)
        hlen = t_ - 1 - r
        lw_hi = r - self.cup_min_days
        keep = (hlen >= self.handle_min_days) & (lw_hi >= first[t_])
        t_, r, hlen, lw_hi = t_[keep], r[keep], hlen[keep], lw_hi[keep]
        f, qq = first[t_], q[t_]
        lft = hmax.arg(np.maximum(r - self.cup_max_days, f), lw_hi)
        cup_low = lo[lmin.arg(lft + 1, r - 1)]
        cup_high_inside = h[hmax.arg(lft + 1, r - 1)]
        handle_low = lo[lmin.arg(r + 1, t_ - 1)]
        hl, hr = h[lft], h[r]
        with np.errstate(divide="ignore", invalid="ignore"):
            depth = 1.0 - cup_low / hl
            round_ = (mean(cs, lft, r, qq) - cup_low) / (hl - cup_low)
            vol_lo = np.maximum(t_ - self.volume_n, f)
            avg_vol = mean(vs, vol_lo, t_ - 1, qq)
            rule = (
                (depth >= self.cup_depth_min)
                & (depth <= self.cup_depth_max)
                & (cup_high_inside <= hl)
                & (np.abs(hr / hl - 1.0) <= self.rim_tolerance)
                & (round_ <= self.roundness)
                & (handle_low >= (1.0 - self.handle_depth_max) * hr)
                & (handle_low > cup_low + (hl - cup_low) / 2.0)
                & (mean(vs, r + 1, t_ - 1, qq) <= self.handle_volume_ratio * mean(vs, lft, r, qq))
                & (c[t_] > hr)
                & (v[t_] >= self.volume_mult * avg_vol)
            )
            strength = np.full(n, np.nan)
            strength[t_] = np.where(avg_vol > 0, v[t_] / avg_vol, np.nan)
        entry[t_[rule]] = True
        return entry, strength


# Rows of one CupAndHandle batch: its two range tables hold ~9 index levels per row.
_CUP_BATCH_ROWS = 1_000_000


def _row_batches(ends: np.ndarray, rows: int) -> list[tuple[int, int]]:
    """Consecutive whole tickers (``ends``: the row after each ticker's last) grouped into
    [a, b) row ranges of about ``rows`` rows (one ticker longer than that is a range alone)."""
    out, a = [], 0
    for b in ends.tolist():
        if b - a >= rows:
            out.append((a, b))
            a = b
    if a < (int(ends[-1]) if ends.size else 0):
        out.append((a, int(ends[-1])))
    return out


def _ticker_prefix_sums(x: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Each ticker's ``[0, cumsum(x[a:b])]`` laid end to end (ticker number q's prefix of row
    i is at ``i + q``): the same sums as one ticker alone, not a running total across tickers
    (whose rounding would differ)."""
    out = np.zeros(x.size + starts.size)
    for q, (a, b) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        out[a + q + 1 : b + q + 1] = np.cumsum(x[a:b])
    return out


class _SparseTable:
    """Range arg-max / arg-min over ``x[i..j]`` (inclusive, j - i + 1 <= max_len) in O(1).

    Ties resolve to the latest index. Only windows within one ticker's array are queried.
    """

    def __init__(self, x: np.ndarray, max_len: int, kind: Literal["max", "min"]) -> None:
        self.x = x if kind == "max" else -x
        n = x.size
        levels = 1
        while (1 << levels) <= max_len and (1 << levels) <= n:
            levels += 1
        self.table = np.empty((levels, n), dtype=np.int32 if n < 2**31 else np.int64)
        self.table[0] = np.arange(n)
        # value[i] = x[index of level k - 1 at i]: each level compares the two halves' values
        # without gathering them from x
        value = self.x
        for k in range(1, levels):
            prev, cur, half = self.table[k - 1], self.table[k], 1 << (k - 1)
            m = n - (1 << k) + 1
            later = value[half : half + m] >= value[:m]
            cur[:m] = np.where(later, prev[half : half + m], prev[:m])
            cur[m:] = prev[m:]
            value = np.where(later, value[half : half + m], value[:m])
        # floor(log2(length)) of every window length up to max_len, looked up, not recomputed
        self.level = np.floor(np.log2(np.arange(1, max(max_len, 1) + 1))).astype(np.int64)

    def arg(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        i = np.asarray(i)
        j = np.maximum(np.asarray(j), i)  # an empty window (j < i) returns i; callers guard
        k = self.level[j - i]
        a = self.table[k, i]
        b = self.table[k, j - (1 << k) + 1]
        return np.where(self.x[b] >= self.x[a], b, a)


# --------------------------------------------------------------------------------------------
# plain-function forms and registry


def trend_following(
    prices: pl.DataFrame, fast: int = 50, slow: int = 200, atr_n: int = 14, atr_stop: float = 3.0
) -> pl.DataFrame:
    """EMA crossover entries with a chandelier stop; see :class:`TrendFollowing`."""
    return TrendFollowing(fast=fast, slow=slow, atr_n=atr_n, atr_stop=atr_stop)(prices)


def canslim_score(
    prices: pl.DataFrame, fundamentals_values: pl.DataFrame | None = None, **params: Any
) -> pl.DataFrame:
    """CAN SLIM score, entry when every criterion holds; see :class:`CanSlim`."""
    return CanSlim(**params)(prices, fundamentals_values)


def livermore_breakout(
    prices: pl.DataFrame,
    base_days: int = 20,
    max_range: float = 0.10,
    volume_mult: float = 1.5,
    volume_n: int | None = None,
) -> pl.DataFrame:
    """Breakout from a tight base on volume; see :class:`LivermoreBreakout`."""
    return LivermoreBreakout(
        base_days=base_days, max_range=max_range, volume_mult=volume_mult, volume_n=volume_n
    )(prices)


def cup_and_handle(prices: pl.DataFrame, **params: Any) -> pl.DataFrame:
    """Cup-with-handle breakout; see :class:`CupAndHandle` for the exact rule."""
    return CupAndHandle(**params)(prices)


SIGNALS: dict[str, type] = {
    "trend_following": TrendFollowing,
    "canslim": CanSlim,
    "livermore_breakout": LivermoreBreakout,
    "cup_and_handle": CupAndHandle,
}


def build_signal(name: str, params: Mapping[str, Any] | None = None) -> Callable[..., pl.DataFrame]:
    """The signal object for ``name`` with ``params``, validated now (before any data is read).

    Raises ValueError naming an unknown signal or parameter and the allowed ones.
    """
    if name not in SIGNALS:
        raise ValueError(f"unknown signal {name!r}; allowed: {sorted(SIGNALS)}")
    cls = SIGNALS[name]
    allowed = [f.name for f in fields(cls)]
    unknown = sorted(set(params or {}) - set(allowed))
    if unknown:
        raise ValueError(f"signal {name!r}: unknown parameter(s) {unknown}; allowed: {allowed}")
    return cls(**(params or {}))


# --------------------------------------------------------------------------------------------
# from signals to daily target weights


def signal_to_weights(
    signals: pl.DataFrame,
    max_positions: int,
    *,
    prices: pl.DataFrame | None = None,
    stop_loss: float | None = None,
    sizing: Literal["slot", "equal"] = "slot",
    sectors: pl.DataFrame | None = None,
    max_per_sector: int | None = None,
) -> pl.DataFrame:
    """Daily target weights from entries and exits, shifted one trading day.

    ``signals``: (ticker, date, entry, exit, signal_strength) as returned by the signals here.
    ``prices``: curated.prices, needed only for ``stop_loss`` (uses adj_close).
    ``sectors``: (ticker, sector), needed only for ``max_per_sector``: the most names one sector
    (null sector = one bucket, unknown) may hold at once; a candidate whose sector is full is
    skipped and the next best one is taken (the same greedy rule as factor strategies).

    Walks the trading days (the sorted dates of ``signals``). After the close of day t:
      * a held name is sold if its ``exit`` is true at t, if ``stop_loss`` is set and
        adj_close_t < (1 - stop_loss) x its entry price (adj_close on the day it was bought), or
        if t is its last row (delisted / data ends);
      * free slots (``max_positions`` - held) are filled with names whose ``entry`` is true at t
        and that are neither held nor sold at t, best ``signal_strength`` first (ties by ticker).
    The holdings after day t's close are the targets for the next trading day t+1: rows carry
    ``rebalance_date`` = t+1, so an order on t+1 executes at t+1's close (never on the signal
    day). Weights: ``sizing="slot"`` gives each name 1 / max_positions (the rest is cash, the
    sum is <= 1); ``"equal"`` gives 1 / number held (fully invested when anything is held).

    Returns (rebalance_date, ticker, weight, signal_strength): one row per name held on that
    date, plus a weight-0.0 row on the date a name is sold, so a date whose book goes to cash
    still appears. Dates with nothing held and nothing sold have no rows.

    The loop is over days, with numpy over tickers inside: filling a limited number of slots
    depends on what is already held, which is a state carried across days and tickers.
    """
    _check_weight_params(signals, max_positions, prices, stop_loss, sizing)
    _check_sector_cap(sectors, max_per_sector)
    if signals.is_empty():
        return pl.DataFrame(schema=_SIGNAL_WEIGHTS_SCHEMA)
    axes = grid_axes(signals)
    grid = _signal_grid(signals, axes)
    close = None
    if stop_loss is not None:
        assert prices is not None
        close = stop_prices(prices, axes)
    return _weights_on_grid(grid, close, max_positions, stop_loss, sizing, sectors, max_per_sector)


def _check_sector_cap(sectors: pl.DataFrame | None, max_per_sector: int | None) -> None:
    if max_per_sector is not None:
        _check_int("max_per_sector", max_per_sector, 1)
        if sectors is None:
            raise ValueError("signal_to_weights: max_per_sector needs the sectors frame")


def _weights_on_grid(
    grid: _SignalGrid,
    close: np.ndarray | None,
    max_positions: int,
    stop_loss: float | None,
    sizing: str,
    sectors: pl.DataFrame | None,
    max_per_sector: int | None,
) -> pl.DataFrame:
    """:func:`signal_to_weights`' rows from its grid (and the stop-loss prices on it)."""
    buckets = None
    if max_per_sector is not None:
        assert sectors is not None
        buckets = _sector_buckets(sectors, grid.tickers)
    out = _walk_days(grid, close, max_positions, stop_loss, sizing, (buckets, max_per_sector))
    if not out[0]:
        return pl.DataFrame(schema=_SIGNAL_WEIGHTS_SCHEMA)
    dd, kk, ww, ss = (np.concatenate(part) for part in out)
    return (
        pl.DataFrame(
            {
                "rebalance_date": grid.dates.gather(dd),
                "ticker": grid.tickers.gather(kk),
                "weight": ww,
                "signal_strength": np.where(np.isfinite(ss), ss, np.nan),
            }
        )
        .with_columns(pl.col("signal_strength").fill_nan(None))
        .sort("rebalance_date", "ticker")
    )


_FIRED_SCHEMA = {
    "ticker": pl.String,
    "date": pl.Date,
    "entry": pl.Boolean,
    "exit": pl.Boolean,
    "signal_strength": pl.Float64,
}
_SIGNAL_WEIGHTS_SCHEMA = {
    "rebalance_date": pl.Date,
    "ticker": pl.String,
    "weight": pl.Float64,
    "signal_strength": pl.Float64,
}


class _SignalGrid(NamedTuple):
    """Signals as days x tickers matrices over the sorted dates and tickers of the frame."""

    dates: pl.Series
    tickers: pl.Series
    entry: np.ndarray
    exit_: np.ndarray
    strength: np.ndarray  # -inf where missing
    last_row: np.ndarray  # per ticker: index of its last day with a row


def _check_weight_params(
    signals: pl.DataFrame,
    max_positions: int,
    prices: pl.DataFrame | None,
    stop_loss: float | None,
    sizing: str,
) -> None:
    _check_int("max_positions", max_positions, 1)
    if stop_loss is not None:
        _check_float("stop_loss", stop_loss, 0.0, 1.0, low_open=True)
        if prices is None:
            raise ValueError("signal_to_weights: stop_loss needs the prices frame (adj_close)")
    if sizing not in ("slot", "equal"):
        raise ValueError(f"parameter 'sizing' must be 'slot' or 'equal', got {sizing!r}")
    require_columns(signals, SIGNAL_COLUMNS, "signals")


class GridAxes(NamedTuple):
    """The days x tickers grid of a (ticker, date) frame: its sorted distinct ``dates`` and
    ``tickers``, and per row its day index ``d`` and ticker index ``k`` (int32 arrays)."""

    dates: pl.Series
    tickers: pl.Series
    d: np.ndarray
    k: np.ndarray


def grid_axes(frame: pl.DataFrame) -> GridAxes:
    """:class:`GridAxes` of ``frame`` (ticker, date; no nulls), in any row order.

    A day's index is read from a table over the calendar days between the first and last date,
    and a frame in ticker order (curated.prices, the signals) numbers its tickers by their runs,
    so 15M rows are never hashed or searched.
    """
    day = frame["date"].to_physical().to_numpy().astype(np.int64)
    first = int(day.min()) if day.size else 0
    span = int(day.max()) - first + 1 if day.size else 0
    seen = np.zeros(span, dtype=bool)
    seen[day - first] = True
    calendar = np.flatnonzero(seen)  # the distinct days, ascending, without hashing
    # int32 indices: two of them per row of 15M rows
    position = np.full(span, -1, dtype=np.int32)
    position[calendar] = np.arange(calendar.size, dtype=np.int32)
    d = position[day - first]
    dates = pl.Series("date", calendar + first, dtype=pl.Int32).cast(pl.Date)
    ticker = frame["ticker"]
    if ticker.is_sorted():
        tickers = ticker.rle().struct.field("value").alias(ticker.name)
        k = ticker.rle_id().to_numpy().astype(np.int32)
    else:
        tickers = ticker.unique().sort()
        codes = pl.int_range(tickers.len(), dtype=pl.Int32, eager=True)
        k = ticker.replace_strict(tickers, codes).to_numpy()
    return GridAxes(dates, tickers, d, k)


def _last_rows(axes: GridAxes) -> np.ndarray:
    """Per ticker of ``axes``: the index of its last day with a row."""
    last = np.full(axes.tickers.len(), -1, dtype=np.int64)
    if (
        axes.k.size
        and np.all(axes.k[1:] >= axes.k[:-1])
        and np.all((axes.d[1:] > axes.d[:-1]) | (axes.k[1:] != axes.k[:-1]))
    ):
        # rows in (ticker, date) order: a ticker's last row holds its last day
        ends = np.flatnonzero(np.diff(axes.k, append=axes.k[-1] + 1))
        last[axes.k[ends]] = axes.d[ends]
        return last
    np.maximum.at(last, axes.k, axes.d)
    return last


def _empty_grid(axes: GridAxes, last_row: np.ndarray) -> _SignalGrid:
    nd, nt = axes.dates.len(), axes.tickers.len()
    return _SignalGrid(
        axes.dates,
        axes.tickers,
        np.zeros((nd, nt), dtype=bool),
        np.zeros((nd, nt), dtype=bool),
        np.full((nd, nt), -np.inf),
        last_row,
    )


def _fill_grid(
    grid: _SignalGrid, axes: GridAxes, rows: slice, signals: pl.DataFrame, member: pl.Series | None
) -> None:
    """Write ``signals`` (the rows ``rows`` of the frame ``axes`` was built on) into ``grid``;
    an entry counts only where ``member`` (per row, None: everywhere) is true."""
    flat = axes.d[rows].astype(np.int64) * grid.entry.shape[1] + axes.k[rows]
    entry = signals["entry"].fill_null(False)
    if member is not None:
        entry = entry & member.slice(rows.start, rows.stop - rows.start)
    grid.entry.reshape(-1)[flat] = entry.fill_null(False).to_numpy()
    grid.exit_.reshape(-1)[flat] = signals["exit"].fill_null(False).to_numpy()
    strength = signals["signal_strength"].fill_null(-np.inf).fill_nan(-np.inf)
    grid.strength.reshape(-1)[flat] = strength.to_numpy()


def _signal_grid(signals: pl.DataFrame, axes: GridAxes) -> _SignalGrid:
    grid = _empty_grid(axes, _last_rows(axes))
    _fill_grid(grid, axes, slice(0, signals.height), signals, None)
    return grid


def stop_prices(prices: pl.DataFrame, axes: GridAxes) -> np.ndarray:
    """``prices``' adj_close as a days x tickers matrix on ``axes`` (NaN where none; rows of
    days or tickers not on the axes are left out)."""
    require_columns(prices, ("ticker", "date", "adj_close"), "prices")
    nd, nt = axes.dates.len(), axes.tickers.len()
    codes = prices.select(
        pl.col("date").replace_strict(axes.dates, pl.int_range(nd, eager=True), default=None),
        pl.col("ticker").replace_strict(axes.tickers, pl.int_range(nt, eager=True), default=None),
        pl.col("adj_close").cast(pl.Float64).fill_null(np.nan),
    ).drop_nulls(["date", "ticker"])
    close = np.full((nd, nt), np.nan)
    close[codes["date"].to_numpy(), codes["ticker"].to_numpy()] = codes["adj_close"].to_numpy()
    return close


class SignalBars(NamedTuple):
    """Bars several signal strategies share, prepared once (see
    :func:`core.strategies.signal_weights.signal_bars`, which adds membership).

    ``adjusted``: :func:`adjusted_ohlcv` of curated.prices without the open (no signal reads
    it), in (ticker, date) order; ``axes``:
    its days x tickers grid and ``last_row`` per ticker; ``member``: per row, may an entry be
    taken (None: every row); ``stop_close``: adj_close on the grid (None: no stop losses).
    """

    adjusted: pl.DataFrame
    axes: GridAxes
    last_row: np.ndarray
    member: pl.Series | None
    stop_close: np.ndarray | None


def prepare_signal_bars(
    prices: pl.DataFrame | Iterable[pl.DataFrame],
    member: pl.Series | None = None,
    *,
    stops: bool = True,
    member_of: Callable[[pl.DataFrame], pl.Series] | None = None,
) -> SignalBars:
    """:class:`SignalBars` of curated.prices (ticker, date, open, high, low, close, adj_close,
    volume), whole or in batches that each hold whole tickers (``Warehouse.read_batches``: the
    prices frame itself never exists, only its adjusted bars); ``member`` per row of the
    adjusted bars (see ``SignalBars``), or ``member_of``: the rule giving it from a batch's
    adjusted (ticker, date) rows, applied batch by batch; ``stops=False`` leaves out the
    stop-loss prices."""
    parts = []
    for batch in [prices] if isinstance(prices, pl.DataFrame) else prices:
        # no signal reads the open: leaving it out saves a column of 15M floats; the stop
        # losses read the unadjusted adj_close (NaN where null), carried along in row order
        adjusted = adjusted_ohlcv(batch).drop("open")
        if stops:
            if not _same_rows(batch, adjusted):  # adjusted_ohlcv sorted the batch
                batch = batch.sort("ticker", "date")
            adjusted = adjusted.with_columns(
                batch["adj_close"].cast(pl.Float64).fill_null(np.nan).alias("_stop")
            )
        if member_of is not None:
            adjusted = adjusted.with_columns(
                member_of(adjusted.select("ticker", "date")).alias("_member")
            )
        parts.append(adjusted)
        del batch
    adjusted = pl.concat(parts) if len(parts) > 1 else parts[0]
    del parts
    if not is_sorted_by(adjusted, ["ticker", "date"]):  # batches out of ticker order
        adjusted = adjusted.sort("ticker", "date")
    axes = grid_axes(adjusted)
    close = None
    if stops:
        close = np.full((axes.dates.len(), axes.tickers.len()), np.nan)
        close[axes.d, axes.k] = adjusted["_stop"].to_numpy()
        adjusted = adjusted.drop("_stop")
    if member_of is not None:
        member = adjusted["_member"].alias("member")
        adjusted = adjusted.drop("_member")
    return SignalBars(adjusted, axes, _last_rows(axes), member, close)


def _same_rows(a: pl.DataFrame, b: pl.DataFrame) -> bool:
    """Whether ``a`` and ``b`` hold the same (ticker, date) in every row."""
    return (
        a.height == b.height
        and a.get_column("date").equals(b.get_column("date"))
        and a.get_column("ticker").equals(b.get_column("ticker"))
    )


# Rows of bars one signal computes at once: its intermediate columns (a dozen floats a row)
# stay a few hundred MB instead of several GB at 7,000 tickers x 20 years.
SIGNAL_BATCH_ROWS = 1_000_000


def signal_batches(
    signal: Any,
    adjusted: pl.DataFrame,
    fundamentals_values: pl.DataFrame | None = None,
    rows: int | None = None,
) -> Iterator[tuple[slice, pl.DataFrame]]:
    """``signal.on_adjusted(adjusted)`` a batch of whole tickers at a time: (rows of
    ``adjusted``, the signal rows of that slice). Every indicator is per ticker, so a batch
    gets exactly the rows the whole frame would; CAN SLIM's relative-strength percentile (per
    date, over every ticker) and its earnings table are computed once on the whole frame.
    ``fundamentals_values``: CAN SLIM only (see :class:`CanSlim`); ``rows``: about how many
    rows a batch holds (default ``SIGNAL_BATCH_ROWS``)."""
    if adjusted.is_empty():
        return
    runs = adjusted.select(pl.col(_T).rle().struct.field("len")).to_series()
    ends = np.cumsum(runs.to_numpy().astype(np.int64))
    ranked = accel = None
    if isinstance(signal, CanSlim):
        bars = _keyed(adjusted.select(_T, "date", "close"))
        # the criteria read the percentile only (rs_return would be 15M more floats held)
        ranked = relative_strength(bars, signal.rs_n, by=_KEY).select("rs_percentile")
        if fundamentals_values is not None:
            accel = _earnings_acceleration(fundamentals_values)
    for a, b in _row_batches(ends, rows or SIGNAL_BATCH_ROWS):
        part = adjusted.slice(a, b - a)
        if isinstance(signal, CanSlim):
            assert ranked is not None
            out = signal._on_ranked(_keyed(part).hstack(ranked.slice(a, b - a)), accel)
        else:
            out = signal.on_adjusted(part)
        yield slice(a, b), out


def batched_signal_weights(
    signal: Any,
    bars: SignalBars,
    max_positions: int,
    *,
    stop_loss: float | None = None,
    sizing: Literal["slot", "equal"] = "slot",
    sectors: pl.DataFrame | None = None,
    max_per_sector: int | None = None,
    fundamentals_values: pl.DataFrame | None = None,
    batch_rows: int | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(weights, fired) of ``signal`` on shared ``bars``, without the whole signals frame.

    ``weights`` = :func:`signal_to_weights` of the signals with each entry kept only where
    ``bars.member`` allows it (stop losses on ``bars.stop_close``); ``fired`` = the signal rows
    (ticker, date, entry, exit, signal_strength) where an entry fires or an exit condition
    starts (true at t, not at t-1), before the membership filter, in (ticker, date) order.
    The signals are computed by :func:`signal_batches` and written into the days x tickers
    grid batch by batch, about ``batch_rows`` rows at a time (default ``SIGNAL_BATCH_ROWS``;
    the result does not depend on it).
    """
    _check_int("max_positions", max_positions, 1)
    if stop_loss is not None:
        _check_float("stop_loss", stop_loss, 0.0, 1.0, low_open=True)
        if bars.stop_close is None:
            raise ValueError("batched_signal_weights: stop_loss needs bars with stop prices")
    if sizing not in ("slot", "equal"):
        raise ValueError(f"parameter 'sizing' must be 'slot' or 'equal', got {sizing!r}")
    _check_sector_cap(sectors, max_per_sector)
    if bars.adjusted.is_empty():
        return pl.DataFrame(schema=_SIGNAL_WEIGHTS_SCHEMA), pl.DataFrame(schema=_FIRED_SCHEMA)
    grid = _empty_grid(bars.axes, bars.last_row)
    # an exit condition true at t and not at t-1 (a ticker's first row has no t-1)
    key = pl.col(_T).rle_id()
    first_row = (key != key.shift(1)).fill_null(True)
    exit_starts = pl.col("exit") & ~(pl.col("exit").shift(1, fill_value=False) & ~first_row)
    fired = []
    for rows, signals in signal_batches(signal, bars.adjusted, fundamentals_values, batch_rows):
        fired.append(signals.filter(pl.col("entry") | exit_starts))
        _fill_grid(grid, bars.axes, rows, signals, bars.member)
    close = bars.stop_close if stop_loss is not None else None
    weights = _weights_on_grid(
        grid, close, max_positions, stop_loss, sizing, sectors, max_per_sector
    )
    return weights, pl.concat(fired)


def _sector_buckets(sectors: pl.DataFrame, tickers: pl.Series) -> np.ndarray:
    """Per ticker of ``tickers`` an integer sector bucket (every null or missing sector: one)."""
    require_columns(sectors, ("ticker", "sector"), "sectors")
    names = (
        pl.DataFrame({"ticker": tickers})
        .join(sectors.select("ticker", "sector").unique("ticker"), on="ticker", how="left")
        .select(pl.col("sector").fill_null("<unknown>"))
        .to_series()
    )
    return names.cast(pl.Categorical).to_physical().to_numpy().astype(np.int64)


def _take_capped(
    ranked: np.ndarray, held: np.ndarray, free: int, cap: tuple[np.ndarray | None, int | None]
) -> np.ndarray:
    """The first ``free`` of ``ranked`` (ticker indices, best first) whose sector bucket still
    has room under the cap (all of the first ``free`` when there is no cap)."""
    buckets, per_sector = cap
    if buckets is None or per_sector is None:
        return ranked[:free]
    counts = np.bincount(buckets[held], minlength=int(buckets.max()) + 1)
    taken = []
    for k in ranked:
        if len(taken) == free:
            break
        if counts[buckets[k]] < per_sector:
            counts[buckets[k]] += 1
            taken.append(k)
    return np.asarray(taken, dtype=np.int64)


def _walk_days(
    grid: _SignalGrid,
    close: np.ndarray | None,
    max_positions: int,
    stop_loss: float | None,
    sizing: str,
    cap: tuple[np.ndarray | None, int | None] = (None, None),
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """The day loop of :func:`signal_to_weights`: per day t, the (day index t+1, ticker index,
    weight, strength) of every name held or sold after t's close. ``cap``: (sector bucket per
    ticker, most names per bucket) or (None, None).

    Each day looks only at the names held (at most ``max_positions``) and the day's entries,
    not at every ticker: at 7,000 tickers x 5,000 days whole-row masks were most of the loop.
    """
    entry, exit_, strength, last_row = grid.entry, grid.exit_, grid.strength, grid.last_row
    nd, nt = entry.shape
    held = np.zeros(nt, dtype=bool)
    names = np.zeros(0, dtype=np.int64)  # the held names, ascending
    entry_px = np.full(nt, np.nan)
    bought_on = np.full(nt, -1)
    out_d: list[np.ndarray] = []
    out_k: list[np.ndarray] = []
    out_w: list[np.ndarray] = []
    out_s: list[np.ndarray] = []
    day_of, entries = np.nonzero(entry)  # by day, then ticker
    starts = np.searchsorted(day_of, np.arange(nd + 1))
    for t in range(nd - 1):
        if close is not None:
            # the fill price is the first close after the signal day (t's close when bought on t-1)
            fill = names[np.isnan(entry_px[names]) & (bought_on[names] < t)]
            entry_px[fill] = close[t, fill]
        out = exit_[t, names] | (last_row[names] <= t)
        if close is not None:
            with np.errstate(invalid="ignore"):
                out |= close[t, names] < (1.0 - stop_loss) * entry_px[names]  # type: ignore[operator]
        sold, names = names[out], names[~out]
        held[sold] = False
        free = max_positions - names.size
        if free > 0:
            cand = entries[starts[t] : starts[t + 1]]
            cand = cand[~held[cand] & (last_row[cand] > t)]
            if sold.size:
                cand = cand[~np.isin(cand, sold)]
            if cand.size:
                ranked = _take_capped(cand[np.lexsort((cand, -strength[t, cand]))], held, free, cap)
                held[ranked] = True
                bought_on[ranked] = t
                entry_px[ranked] = np.nan
                names = np.sort(np.concatenate([names, ranked]))
        if names.size or sold.size:
            w = 1.0 / (max_positions if sizing == "slot" else max(names.size, 1))
            book = np.sort(np.concatenate([names, sold]))
            out_d.append(np.full(book.size, t + 1))
            out_k.append(book)
            out_w.append(np.where(held[book], w, 0.0))
            out_s.append(strength[t, book])
    return out_d, out_k, out_w, out_s

"""The ``demo`` source: a deterministic synthetic equity market generated in-process.

No files, no network: :func:`generate_market` builds a whole market from a seed with vectorised
numpy (matrices of trading days x tickers) and returns polars frames in the raw schemas of
:mod:`quant_pipeline.core.data.schema` (``source = "demo"``, ``ingested_at`` = the end date at
00:00 UTC, so a rerun with the same arguments gives identical frames). :class:`DemoSource` serves
that market through the :class:`~quant_pipeline.sources.base.Source` interface.

What the market looks like
--------------------------
- ``n_tickers`` synthetic tickers (3-4 letters) across the 11 ``SECTORS``; every sector has at
  least one ticker when ``n_tickers >= 11``.
- Trading days: Monday-Friday from ``start`` to ``end`` minus market holidays closed for every
  ticker: New Year's Day, Independence Day, Thanksgiving (4th Thursday of November) and Christmas
  when they fall on a weekday (no observed-holiday shifting).
- Lifecycles: ~15% of tickers list later than ``start`` (IPO: no prices or fundamentals before
  their first price date) and ~10% delist before ``end`` (their prices simply stop).
- Prices: a total-return path is simulated first (market factor ~7%/yr drift and ~16%/yr vol,
  sector factors, idiosyncratic daily vol 1-3%, planted premia below). As-traded ``close`` is
  derived from it by applying splits (~10% of tickers have one 2:1, 3:1 or 4:1 split) and
  quarterly cash dividends (~40% of tickers pay, 1-4%/yr, in cents). ``adj_close`` follows the
  Yahoo/CRSP convention: it equals ``close`` on a ticker's last row, and every earlier price is
  multiplied by ``1 - dividend / close(t-1)`` for each dividend with ex-date ``t`` after it and by
  ``1 / ratio`` for each later split. By construction ``adj_close`` is proportional to the
  simulated total-return path. ``open/high/low`` bracket the close; ``volume`` is in shares
  (it multiplies after a split, as shares outstanding do).
- Corporate actions: ``'split'`` rows (value = new shares per old share) on the split date and
  ``'dividend'`` rows (cash per share after any earlier split) on the ex-date.
- Fundamentals: quarterly (``period_type 'Q'``, calendar quarter ends) in long format with the 17
  ``FUNDAMENTAL_ITEMS`` (short-term debt, preferred stock and minority interest derived from the
  other items without a draw of their own; ``dividends_paid`` = the cash of the quarter's
  dividend events x the shares on each ex-date, 0 for the ~60% that pay none, so trailing
  dividends / market cap is the drawn 1-4% yield of a payer); one ``report_date`` per
  ticker-quarter, 25-80 days
  after period end;
  quarters not yet reported by ``end`` (or by the delisting date) are absent. Items are internally
  consistent: ``gross_profit <= revenue``, ``operating_income <= gross_profit``, ``ebit`` close to
  operating income, some loss-making companies, a few negative-equity companies,
  ``current_assets + net_ppe <= total_assets``, ``shares_outstanding`` as traded (multiplied at a
  split). Earnings are market cap x an earnings yield driven by the value trait, so price ~
  earnings x multiple.
- Securities: one current profile per ticker (as of ``end``, or the delisting date): name,
  sector, industry (three per sector), exchange (NYSE/NASDAQ), country 'US', quote_type
  'EQUITY', currency 'USD', shares_outstanding, float_shares (80-99% of the shares, 20-60% for
  ~10% closely held companies) and market_cap (close x shares). Market caps are
  lognormal: drawn for the middle of each ticker's life between $200M and $200B (median $3B),
  then spread by returns, so at the end roughly 5% are below $200M and a few above $100B; about
  70% sit between $300M and $10B. Average daily volume is mostly above 100k shares.
- Membership: one interval per ticker in universe ``'demo'``: start = first price date, end = last
  price date when delisted, else null.

Planted factor premia (modest, noisy)
-------------------------------------
Each ticker has latent traits that tilt its expected total return:

- quality ``q`` (static, N(0,1)): +3%/yr per standard deviation. It drives higher gross and net
  margins, higher ROE and lower debt/equity in the fundamentals.
- cheapness ``c`` (mean-reverting, half-life 2 years, N(0,1)): +3%/yr per standard deviation.
  The earnings yield is ``base(sector) * exp(0.5 c - 0.1 q)``; as ``c`` decays the cheap names
  re-rate (their multiple rises), which is where their extra return comes from.
- momentum: a slowly varying drift (half-life 9 months, 6%/yr standard deviation), so past
  12-1 month winners keep part of their drift.

Data defects (the curated layer must filter them)
-------------------------------------------------
- Missing days: ~0.05% of ticker-days (at least one) are absent for that ticker only.
- Bad rows: ~0.01% of ticker-days (at least four), cycling through exactly these kinds:

  1. ``negative_close``: ``close`` and ``adj_close`` are the negatives of the true values;
  2. ``zero_close``: ``close`` and ``adj_close`` are 0.0;
  3. ``high_below_low``: ``high`` and ``low`` are swapped, so ``high < low``;
  4. ``null_close``: ``close`` and ``adj_close`` are null.

  Their positions are in :attr:`DemoMarket.bad_rows`. Neither defect touches a ticker's first or
  last row, a split or ex-dividend date, or the day before one, so the adjustment stays checkable.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple

import numpy as np
import polars as pl

from quant_pipeline.core.data.calendar import TRADING_DAYS_PER_YEAR
from quant_pipeline.core.data.schema import (
    RAW_CORPORATE_ACTIONS,
    RAW_FUNDAMENTALS,
    RAW_MEMBERSHIP,
    RAW_PRICES,
    RAW_SECURITIES,
    SECTORS,
    conform,
    empty,
)
from quant_pipeline.sources.base import FetchRequest

SOURCE = "demo"
UNIVERSE = "demo"
BAD_ROW_KINDS: tuple[str, ...] = ("negative_close", "zero_close", "high_below_low", "null_close")

_MARKET_DRIFT = 0.07
_MARKET_VOL = 0.16
_SECTOR_VOL = 0.10
_QUALITY_PREMIUM = 0.03  # per standard deviation of q, per year
_VALUE_PREMIUM = 0.03  # per standard deviation of c, per year
_MOMENTUM_DRIFT_SD = 0.06  # per year
_MISSING_RATE = 5e-4
_BAD_RATE = 1e-4

# Per sector: market beta, base earnings yield, base net margin, base gross margin, base
# debt/equity, net PP&E share of assets, share of tickers (roughly S&P 500 weights by count).
_SECTOR_PARAMS: dict[str, tuple[float, float, float, float, float, float, float]] = {
    "Communication Services": (1.0, 0.050, 0.12, 0.55, 0.8, 0.25, 0.05),
    "Consumer Discretionary": (1.15, 0.050, 0.07, 0.38, 0.8, 0.25, 0.11),
    "Consumer Staples": (0.65, 0.050, 0.07, 0.35, 0.8, 0.30, 0.07),
    "Energy": (1.1, 0.060, 0.08, 0.30, 0.6, 0.55, 0.05),
    "Financials": (1.1, 0.065, 0.18, 0.90, 2.5, 0.02, 0.13),
    "Health Care": (0.85, 0.045, 0.10, 0.60, 0.5, 0.15, 0.12),
    "Industrials": (1.05, 0.050, 0.08, 0.30, 0.8, 0.30, 0.14),
    "Information Technology": (1.2, 0.042, 0.15, 0.60, 0.4, 0.10, 0.14),
    "Materials": (1.05, 0.055, 0.08, 0.28, 0.7, 0.50, 0.06),
    "Real Estate": (0.85, 0.048, 0.20, 0.60, 1.2, 0.60, 0.06),
    "Utilities": (0.55, 0.055, 0.11, 0.40, 1.5, 0.65, 0.05),
}

_INDUSTRIES: dict[str, tuple[str, ...]] = {
    "Communication Services": ("Telecom Services", "Entertainment", "Internet Content"),
    "Consumer Discretionary": ("Specialty Retail", "Auto Parts", "Restaurants"),
    "Consumer Staples": ("Packaged Foods", "Beverages", "Household Products"),
    "Energy": ("Oil & Gas E&P", "Oil & Gas Midstream", "Oil & Gas Equipment"),
    "Financials": ("Banks - Regional", "Insurance", "Asset Management"),
    "Health Care": ("Biotechnology", "Medical Devices", "Health Care Plans"),
    "Industrials": ("Aerospace & Defense", "Machinery", "Railroads"),
    "Information Technology": ("Software", "Semiconductors", "IT Services"),
    "Materials": ("Chemicals", "Steel", "Building Materials"),
    "Real Estate": ("REIT - Residential", "REIT - Office", "REIT - Industrial"),
    "Utilities": ("Utilities - Regulated Electric", "Utilities - Gas", "Utilities - Water"),
}

_NAME_WORDS = (
    "Apex", "Blue", "Cedar", "Delta", "Eagle", "Falcon", "Granite", "Harbor", "Iron", "Juniper",
    "Keystone", "Lumen", "Maple", "North", "Orion", "Pioneer", "Quantum", "River", "Summit",
    "Titan", "Union", "Vertex", "Willow", "Zenith", "Atlas", "Beacon", "Crest", "Frontier",
)  # fmt: skip
_NAME_SUFFIXES = ("Inc.", "Corp.", "Holdings", "Group", "Co.", "Industries", "Partners")


@dataclass(frozen=True)
class DemoMarket:
    """A generated market: frames in the raw schemas (``source = "demo"``).

    ``prices`` (RAW_PRICES), ``corporate_actions`` (RAW_CORPORATE_ACTIONS), ``fundamentals``
    (RAW_FUNDAMENTALS), ``securities`` (RAW_SECURITIES), ``membership`` (RAW_MEMBERSHIP), all sorted
    by their keys. ``bad_rows`` lists the planted defects: columns ticker, date, kind (one of
    ``BAD_ROW_KINDS``). ``traits`` holds the latent per-ticker traits (ticker, sector, quality,
    beta) for diagnostics; nothing in the pipeline may use it.
    """

    prices: pl.DataFrame
    corporate_actions: pl.DataFrame
    fundamentals: pl.DataFrame
    securities: pl.DataFrame
    membership: pl.DataFrame
    bad_rows: pl.DataFrame
    traits: pl.DataFrame


def latest_weekday(today: date | None = None) -> date:
    """The latest Monday-Friday on or before ``today`` (default: the local date today)."""
    day = today or date.today()
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def market_holidays(start: date, end: date) -> list[date]:
    """Weekday market holidays in [start, end]: Jan 1, Jul 4, Thanksgiving, Dec 25."""
    days = []
    for year in range(start.year, end.year + 1):
        thanksgiving = np.busday_offset(f"{year}-11", 3, roll="forward", weekmask="Thu")
        for day in (
            date(year, 1, 1),
            date(year, 7, 4),
            thanksgiving.astype(date),
            date(year, 12, 25),
        ):
            if start <= day <= end and day.weekday() < 5:
                days.append(day)
    return days


def trading_days(start: date, end: date) -> np.ndarray:
    """The demo market's trading days in [start, end] as ``datetime64[D]``."""
    days = np.arange(np.datetime64(start, "D"), np.datetime64(end, "D") + 1)
    holidays = np.array(market_holidays(start, end), dtype="datetime64[D]")
    return days[np.is_busday(days, holidays=holidays)]


def generate_market(
    n_tickers: int = 500,
    start: date = date(2010, 1, 1),
    end: date | None = None,
    seed: int = 42,
) -> DemoMarket:
    """Generate (or return the cached) demo market for these arguments.

    ``end`` defaults to the latest weekday on or before today. The same arguments always give
    identical frames; results are cached in-process because several assets ask for them.
    Raises ``ValueError`` when ``n_tickers < 1`` or the window holds fewer than 60 trading days.
    """
    return _cached_market(n_tickers, start, end, seed, need_prices=True)


# Up to _CACHE_SIZE markets stay in memory. A market with at least RELEASE_PRICES_ROWS price rows
# (about 1,000 tickers x 20 years) hands its price frame to the first DemoSource.prices caller
# instead of keeping it: the raw.prices asset writes it once, and keeping 1-2 GB alive for the
# rest of a pipeline run would push the whole chain over its memory budget. The small frames stay
# cached; asking for the prices again regenerates the market.
_CACHE_SIZE = 4
RELEASE_PRICES_ROWS = 5_000_000
_CACHE: OrderedDict[tuple[int, date, date, int], DemoMarket] = OrderedDict()
_RELEASED = pl.DataFrame(schema=RAW_PRICES)


def _cache_key(
    n_tickers: int, start: date, end: date | None, seed: int
) -> tuple[int, date, date, int]:
    return (int(n_tickers), start, latest_weekday() if end is None else end, int(seed))


def _cached_market(
    n_tickers: int, start: date, end: date | None, seed: int, *, need_prices: bool
) -> DemoMarket:
    key = _cache_key(n_tickers, start, end, seed)
    market = _CACHE.get(key)
    if market is None or (need_prices and market.prices is _RELEASED):
        market = _generate(*key)
    _CACHE[key] = market
    _CACHE.move_to_end(key)
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return market


def _release_prices(key: tuple[int, date, date, int]) -> None:
    market = _CACHE.get(key)
    if market is not None and market.prices.height >= RELEASE_PRICES_ROWS:
        _CACHE[key] = replace(market, prices=_RELEASED)


def _pick(rng: np.random.Generator, n: int, share: float, minimum: int = 1) -> np.ndarray:
    """A boolean mask selecting round(share * n) (at least ``minimum``) of n items."""
    count = min(n, max(minimum, round(share * n)))
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, size=count, replace=False)] = True
    return mask


def _tickers(rng: np.random.Generator, n: int) -> list[str]:
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    seen: dict[str, None] = {}
    while len(seen) < n:
        codes = letters[rng.integers(0, 26, size=(2 * n + 16, 4))]
        lengths = rng.choice([3, 4], size=2 * n + 16, p=[0.4, 0.6])
        for row, length in zip(codes, lengths, strict=True):
            seen.setdefault("".join(row[:length]), None)
    return sorted(list(seen)[:n])


def _monthly_ou(
    rng: np.random.Generator, n_months: int, n: int, half_life_months: float
) -> np.ndarray:
    """A unit-variance stationary AR(1) per column (loop over months, vectorised over tickers)."""
    phi = np.exp(-np.log(2.0) / half_life_months)
    shocks = rng.standard_normal((n_months, n))
    out = np.empty((n_months, n))
    out[0] = shocks[0]
    scale = np.sqrt(1.0 - phi**2)
    for k in range(1, n_months):
        out[k] = phi * out[k - 1] + scale * shocks[k]
    return out


class _Traits(NamedTuple):
    """Static per-ticker traits; ``sector`` holds the sector parameters of each ticker."""

    tickers: pl.Series
    sector_idx: np.ndarray
    sector: tuple[np.ndarray, ...]  # beta, earnings yield, net/gross margin, debt/equity, ppe
    is_fin: np.ndarray
    quality: np.ndarray
    log_cap_mid: np.ndarray
    price_mid: np.ndarray
    beta: np.ndarray
    idio_vol: np.ndarray
    turnover: np.ndarray
    share_growth: np.ndarray


class _Lifecycle(NamedTuple):
    """First and last price row per ticker, the delisted mask and the days x tickers listing."""

    first: np.ndarray
    last: np.ndarray
    delisted: np.ndarray
    listed: np.ndarray


class _Corporate(NamedTuple):
    """Split and dividend events (row indices into the trading days)."""

    split: np.ndarray
    split_day: np.ndarray
    split_ratio: np.ndarray
    ex_day: np.ndarray
    ex_ok: np.ndarray
    div_cash: np.ndarray


class _Defects(NamedTuple):
    """Which ticker-days are present, and where the bad rows sit (column, day, kind index)."""

    present: np.ndarray
    bad_col: np.ndarray
    bad_day: np.ndarray
    bad_kind: np.ndarray


def _generate(n: int, start: date, end: date, seed: int) -> DemoMarket:
    """The market of :func:`generate_market`, step by step. Every step draws from one generator
    in a fixed order: reordering steps or draws changes every frame for a given seed."""
    dates = _checked_trading_days(n, start, end)
    # Everything is drawn up to a horizon that does not move with ``end`` and then cut at
    # ``end``: a market ending a week later is the same market plus one week (a real weekly
    # refresh), as long as both ends lie in the same horizon (see generation_horizon).
    horizon_dates = trading_days(start, generation_horizon(end))
    k = len(dates)
    rng = np.random.default_rng(seed)
    ingested_at = datetime(end.year, end.month, end.day, tzinfo=UTC)
    rows = np.arange(len(horizon_dates))[:, None]
    traits = _static_traits(rng, n)
    life = _lifecycles(rng, n, rows)
    month_of_day, cheapness, alpha_annual = _latent_alpha(rng, horizon_dates, traits.quality)
    total_return, eps = _total_return_path(rng, traits, life, rows, month_of_day, alpha_annual)
    del alpha_annual
    price0, shares0, years_listed = _price_and_share_levels(traits, life, rows, total_return)
    split, split_day, split_ratio, split_cum = _splits(rng, life, rows)
    price_no_div = price0 * total_return / split_cum
    del total_return
    ex_day, ex_ok, div_cash, log_div = _dividends(rng, horizon_dates, life, split_day, price_no_div)
    close = price_no_div * np.exp(np.cumsum(log_div, axis=0))
    del price_no_div
    events = _Corporate(split, split_day, split_ratio, ex_day, ex_ok, div_cash)
    adj_close = _adjusted_close(close, log_div, events, k - 1)  # as known at end
    del log_div
    shares = np.round(shares0 * np.exp(traits.share_growth * years_listed)) * split_cum
    # Memory: every matrix is n_days x n float64 (120 MB at 3,000 tickers x 20 years); drop each
    # one as soon as it is used so the peak stays a handful of them, not twenty.
    del years_listed, split_cum
    open_, high, low, volume = _ohlcv(rng, close, shares, eps, traits)
    del eps
    defects = _defects(rng, life, rows, events)

    # What the fundamentals and profiles need from the clean close, taken before defects land.
    market_cap = close * shares
    last_by_end = np.minimum(life.last, k - 1)
    close_last = close[last_by_end, np.arange(n)]
    shares_last = shares[last_by_end, np.arange(n)]
    _plant_bad_rows(defects, close, adj_close, high, low)

    # Fundamentals before the price frame so the matrices can go; no draws in between.
    fundamentals = _fundamentals(
        rng,
        dates=horizon_dates,
        end=end,
        traits=traits,
        life=life,
        market_cap=market_cap,
        shares=shares,
        cheapness=cheapness,
        dividends=_dividends_paid(horizon_dates, events, shares),
    ).with_columns(pl.lit(SOURCE).alias("source"), pl.lit(ingested_at).alias("ingested_at"))
    del market_cap, shares

    matrices = {
        "open": open_[:k],
        "high": high[:k],
        "low": low[:k],
        "close": close[:k],
        "adj_close": adj_close[:k],
        "volume": volume[:k],
    }
    del open_, high, low, close, adj_close, volume
    return _assemble(
        traits,
        (dates, horizon_dates),
        life,
        defects,
        events,
        matrices,
        fundamentals,
        (rng, shares_last, close_last, last_by_end, ingested_at, end),
    )


def _assemble(traits, calendars, life, defects, events, matrices, fundamentals, extra):
    """The market's frames, cut at ``end`` (``calendars``: the trading days to ``end`` and to the
    horizon; ``extra``: the generator, last shares and closes, last rows by ``end``, the
    ingestion stamp and ``end``)."""
    dates, horizon_dates = calendars
    rng, shares_last, close_last, last_by_end, ingested_at, end = extra
    k = len(dates)
    prices = _prices_frame(traits.tickers, dates, defects.present[:k], matrices, ingested_at)
    actions = _actions_frame(traits.tickers, horizon_dates, events, ingested_at)
    actions = actions.filter(pl.col("date") <= end)
    listed_by_end = pl.Series(life.first < k)  # a ticker listing after end is not known yet
    securities = _securities_frame(rng, traits, shares_last, close_last, ingested_at)
    securities = securities.filter(listed_by_end)
    life_by_end = _Lifecycle(life.first, last_by_end, life.last < k - 1, life.listed[:k])
    return DemoMarket(
        prices=conform(prices, RAW_PRICES),
        corporate_actions=conform(actions, RAW_CORPORATE_ACTIONS).sort("ticker", "date", "action"),
        fundamentals=conform(fundamentals, RAW_FUNDAMENTALS),
        securities=conform(securities, RAW_SECURITIES),
        membership=conform(
            _membership_frame(traits.tickers, horizon_dates, life_by_end, ingested_at).filter(
                listed_by_end
            ),
            RAW_MEMBERSHIP,
        ),
        bad_rows=_bad_rows_frame(traits.tickers, horizon_dates, defects).filter(
            pl.col("date") <= end
        ),
        traits=pl.DataFrame(
            {
                "ticker": traits.tickers,
                "sector": np.array(SECTORS)[traits.sector_idx],
                "quality": traits.quality,
                "beta": traits.beta,
            }
        ),
    )


def generation_horizon(end: date) -> date:
    """The last day the demo market is drawn to for a market ending on ``end``: 31 December of
    ``end``'s year. Two ends in one year give the same market up to the earlier end (a weekly
    refresh adds a week); the first end in a new year draws the market again, as a restated
    history. A year, not longer, so a short window keeps its share of listings, delistings,
    splits and bad rows (they are drawn over the whole drawn span)."""
    return date(end.year, 12, 31)


def _checked_trading_days(n: int, start: date, end: date) -> np.ndarray:
    """The trading days of the market, after checking there are tickers and >= 60 days."""
    if n < 1:
        raise ValueError(f"demo market: n_tickers must be >= 1, got {n}")
    dates = trading_days(start, end)
    n_days = len(dates)
    if n_days < 60:
        raise ValueError(
            f"demo market: {start}..{end} holds {n_days} trading days; at least 60 are needed"
        )
    return dates


def _static_traits(rng: np.random.Generator, n: int) -> _Traits:
    """Tickers, sectors (each sector at least once when n >= 11) and static traits."""
    tickers = _tickers(rng, n)
    weights = np.array([p[6] for p in _SECTOR_PARAMS.values()])
    sector_idx = rng.choice(len(SECTORS), size=n, p=weights / weights.sum())
    sector_idx[rng.permutation(n)[: min(n, len(SECTORS))]] = np.arange(min(n, len(SECTORS)))
    params = np.array([_SECTOR_PARAMS[s][:6] for s in SECTORS])[sector_idx]
    s_beta = params.T[0]
    quality = rng.standard_normal(n)
    # Size and price level are drawn for the middle of each ticker's life, so that random drift
    # spreads caps to both sides instead of compounding from the first day.
    log_cap_median = np.log(3e9)
    log_cap_mid = np.clip(log_cap_median + 1.2 * rng.standard_normal(n), np.log(2e8), np.log(2e11))
    cap_dev = log_cap_mid - log_cap_median
    price_mid = np.clip(np.exp(np.log(35.0) + 0.3 * cap_dev + 0.4 * rng.standard_normal(n)), 5, 300)
    beta = np.clip(s_beta + 0.2 * rng.standard_normal(n), 0.3, 2.0)
    idio_vol = np.clip(0.015 - 0.003 * cap_dev + 0.003 * rng.standard_normal(n), 0.01, 0.03)
    turnover = np.exp(np.log(0.006) - 0.15 * cap_dev + 0.3 * rng.standard_normal(n))
    share_growth = -0.005 + 0.02 * rng.standard_normal(n)
    return _Traits(
        tickers=pl.Series("ticker", tickers, dtype=pl.String),
        sector_idx=sector_idx,
        sector=tuple(params.T),
        is_fin=sector_idx == SECTORS.index("Financials"),
        quality=quality,
        log_cap_mid=log_cap_mid,
        price_mid=price_mid,
        beta=beta,
        idio_vol=idio_vol,
        turnover=turnover,
        share_growth=share_growth,
    )


def _lifecycles(rng: np.random.Generator, n: int, rows: np.ndarray) -> _Lifecycle:
    """IPOs (~15% list late) and delistings (~10% stop before the end)."""
    n_days = len(rows)
    first = np.zeros(n, dtype=np.int64)
    ipo = _pick(rng, n, 0.15)
    first[ipo] = rng.integers(int(0.1 * n_days), int(0.7 * n_days), size=ipo.sum())
    last = np.full(n, n_days - 1, dtype=np.int64)
    delisted = _pick(rng, n, 0.10)
    span = n_days - 1 - first[delisted]
    last[delisted] = first[delisted] + np.maximum(
        40, (span * rng.uniform(0.3, 0.9, size=delisted.sum())).astype(np.int64)
    )
    last = np.minimum(last, n_days - 1)
    listed = (rows >= first) & (rows <= last)
    return _Lifecycle(first=first, last=last, delisted=last < n_days - 1, listed=listed)


def _latent_alpha(
    rng: np.random.Generator, dates: np.ndarray, quality: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Month index of each day, monthly cheapness and the annual alpha (months x tickers)."""
    n = len(quality)
    month_of_day = (dates.astype("datetime64[M]") - dates[0].astype("datetime64[M]")).astype(int)
    n_months = int(month_of_day[-1]) + 1
    cheapness = _monthly_ou(rng, n_months, n, half_life_months=24.0)
    mom_drift = _MOMENTUM_DRIFT_SD * _monthly_ou(rng, n_months, n, half_life_months=9.0)
    alpha_annual = _QUALITY_PREMIUM * quality + _VALUE_PREMIUM * cheapness + mom_drift
    return month_of_day, cheapness, alpha_annual


def _total_return_path(
    rng: np.random.Generator,
    traits: _Traits,
    life: _Lifecycle,
    rows: np.ndarray,
    month_of_day: np.ndarray,
    alpha_annual: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The total-return index (1 on each ticker's first day) and the idiosyncratic shocks."""
    n_days, n = len(rows), len(traits.quality)
    dt = 1.0 / TRADING_DAYS_PER_YEAR
    market = (_MARKET_DRIFT - 0.5 * _MARKET_VOL**2) * dt + _MARKET_VOL * np.sqrt(
        dt
    ) * rng.standard_normal(n_days)
    sector_ret = _SECTOR_VOL * np.sqrt(dt) * rng.standard_normal((n_days, len(SECTORS)))
    eps = rng.standard_normal((n_days, n))
    idio_vol = traits.idio_vol
    log_ret = (
        traits.beta * market[:, None]
        + sector_ret[:, traits.sector_idx]
        + alpha_annual[month_of_day] * dt
        - 0.5 * idio_vol**2
        + idio_vol * eps
    )
    log_ret[~life.listed | (rows == life.first)] = 0.0  # the total-return index is 1 on day one
    total_return = np.exp(np.cumsum(log_ret, axis=0))
    return total_return, eps


def _price_and_share_levels(
    traits: _Traits, life: _Lifecycle, rows: np.ndarray, total_return: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First-day price and shares that hit the drawn mid-life price and cap; years listed."""
    dt = 1.0 / TRADING_DAYS_PER_YEAR
    mid = (life.first + life.last) // 2
    cols = np.arange(len(life.first))
    price0 = traits.price_mid / total_return[mid, cols]
    years_listed = (rows - life.first) * dt
    shares0 = np.round(
        np.exp(traits.log_cap_mid - traits.share_growth * years_listed[mid, cols])
        / traits.price_mid
    )
    return price0, shares0, years_listed


def _splits(
    rng: np.random.Generator, life: _Lifecycle, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """~10% of tickers split once (2:1, 3:1 or 4:1); the cumulative ratio per day."""
    first, last = life.first, life.last
    n = len(first)
    can_split = (last - first) >= 60
    split = _pick(rng, n, 0.10) & can_split
    if not split.any() and can_split.any():
        split[np.flatnonzero(can_split)[0]] = True
    split_day = np.full(n, -1, dtype=np.int64)
    split_ratio = np.ones(n)
    lo, hi = first[split] + 20, last[split] - 20
    split_day[split] = lo + (rng.random(split.sum()) * (hi - lo)).astype(np.int64)
    split_ratio[split] = rng.choice([2.0, 3.0, 4.0], size=split.sum(), p=[0.6, 0.25, 0.15])
    split_cum = np.where((rows >= split_day) & split, split_ratio, 1.0)
    return split, split_day, split_ratio, split_cum


def _dividends(
    rng: np.random.Generator,
    dates: np.ndarray,
    life: _Lifecycle,
    split_day: np.ndarray,
    price_no_div: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Quarterly ex-dates (quarters x tickers), cash in cents, and log(1 - D / close(t-1)) per
    day; the loop runs over quarters only."""
    n_days, n = price_no_div.shape
    cols = np.arange(n)
    payer = _pick(rng, n, 0.40)
    div_yield = rng.uniform(0.01, 0.04, size=n)
    month_offset = rng.integers(0, 3, size=n)
    day_offset = rng.integers(4, 25, size=n)
    months = np.arange(dates[0].astype("datetime64[M]"), dates[-1].astype("datetime64[M]") + 1)
    quarter_months = months[: len(months) - len(months) % 3].reshape(-1, 3)  # quarters x 3
    candidates = quarter_months[:, month_offset].astype("datetime64[D]") + day_offset
    ex_day = np.searchsorted(dates, candidates)
    ex_ok = payer & (ex_day > life.first) & (ex_day <= life.last) & (ex_day != split_day)
    div_cash = np.zeros(ex_day.shape)
    div_frac = np.zeros(ex_day.shape)
    cum = np.ones(n)
    for k in range(ex_day.shape[0]):
        prev_close = price_no_div[np.clip(ex_day[k] - 1, 0, n_days - 1), cols] * cum
        ex_ok[k] &= prev_close >= 1.0  # penny stocks suspend their dividend
        ok = ex_ok[k]
        cash = np.maximum(np.round(div_yield / 4.0 * prev_close, 2), 0.01)
        frac = np.where(ok, cash / prev_close, 0.0)
        div_cash[k], div_frac[k] = np.where(ok, cash, 0.0), frac
        cum *= 1.0 - frac
    log_div = np.zeros((n_days, n))
    np.add.at(log_div, (ex_day[ex_ok], np.nonzero(ex_ok)[1]), np.log1p(-div_frac[ex_ok]))
    return ex_day, ex_ok, div_cash, log_div


def _dividends_paid(dates: np.ndarray, events: _Corporate, shares: np.ndarray) -> np.ndarray:
    """Cash paid per calendar quarter and ticker (quarters of :func:`_quarter_ends` x tickers):
    the sum over the ticker's dividends with an ex-date in the quarter of cash per share x the
    shares outstanding on the ex-date (both as traded). No draws: it restates the dividend events
    of the price path, so a non-payer reports 0 and a payer about its yield x its cap."""
    period_end = _quarter_ends(dates)
    paid = np.zeros((len(period_end), shares.shape[1]))
    rows, cols = np.nonzero(events.ex_ok)
    days = events.ex_day[rows, cols]
    quarter = np.searchsorted(period_end, dates[days])  # first quarter end on or after ex-date
    inside = quarter < len(period_end)
    np.add.at(
        paid,
        (quarter[inside], cols[inside]),
        events.div_cash[rows, cols][inside] * shares[days[inside], cols[inside]],
    )
    return paid


def _adjusted_close(
    close: np.ndarray, log_div: np.ndarray, events: _Corporate, as_of: int
) -> np.ndarray:
    """Yahoo-convention adjustment as a vendor publishes it on day row ``as_of``: each price
    times the factors of the events after its day, up to ``as_of`` (later events are not known
    yet; a new dividend restates the earlier adjusted closes, as at a real vendor)."""
    split = events.split
    log_factor = log_div.copy()  # log(1 - D / close(t-1)) on ex-dates
    log_factor[events.split_day[split], np.flatnonzero(split)] -= np.log(events.split_ratio[split])
    cum_factor = np.cumsum(log_factor, axis=0)
    del log_factor
    return close * np.exp(cum_factor[as_of] - cum_factor)


def _ohlcv(
    rng: np.random.Generator,
    close: np.ndarray,
    shares: np.ndarray,
    eps: np.ndarray,
    traits: _Traits,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Open, high and low bracketing the close; volume in shares (busier on big moves)."""
    shape = close.shape
    idio_vol = traits.idio_vol
    open_ = close * np.exp(0.5 * idio_vol * rng.standard_normal(shape))
    high = np.maximum(open_, close) * np.exp(np.abs(0.5 * idio_vol * rng.standard_normal(shape)))
    low = np.minimum(open_, close) * np.exp(-np.abs(0.5 * idio_vol * rng.standard_normal(shape)))
    volume = np.round(
        shares
        * traits.turnover
        * np.exp(0.35 * rng.standard_normal(shape) + 8.0 * np.abs(eps) * idio_vol)
    )
    return open_, high, low, volume


def _defects(
    rng: np.random.Generator, life: _Lifecycle, rows: np.ndarray, events: _Corporate
) -> _Defects:
    """Missing ticker-days and bad rows, never on a first/last row, an event day or the day
    before one."""
    listed, n_days = life.listed, len(rows)
    protected = ~listed | (rows == life.first) | (rows == life.last)
    for event_days, event_cols in (
        (events.ex_day[events.ex_ok], np.nonzero(events.ex_ok)[1]),
        (events.split_day[events.split], np.flatnonzero(events.split)),
    ):
        protected[event_days, event_cols] = True
        protected[event_days - 1, event_cols] = True
    free = np.flatnonzero(~protected.T)  # ticker-major positions
    n_listed = int(listed.sum())
    n_missing = min(len(free), max(1, round(_MISSING_RATE * n_listed)))
    n_bad = min(len(free) - n_missing, max(len(BAD_ROW_KINDS), round(_BAD_RATE * n_listed)))
    chosen = free[rng.choice(len(free), size=n_missing + n_bad, replace=False)]
    missing_pos, bad_pos = chosen[:n_missing], np.sort(chosen[n_missing:])
    bad_col, bad_day = np.divmod(bad_pos, n_days)
    present = listed.copy()
    present[missing_pos % n_days, missing_pos // n_days] = False
    return _Defects(present, bad_col, bad_day, np.arange(n_bad) % len(BAD_ROW_KINDS))


def _plant_bad_rows(
    defects: _Defects,
    close: np.ndarray,
    adj_close: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
) -> None:
    """Write each bad row's defect into the matrices (in place)."""
    for kind, name in enumerate(BAD_ROW_KINDS):
        d = defects.bad_day[defects.bad_kind == kind]
        c = defects.bad_col[defects.bad_kind == kind]
        if name == "negative_close":
            close[d, c], adj_close[d, c] = -close[d, c], -adj_close[d, c]
        elif name == "zero_close":
            close[d, c], adj_close[d, c] = 0.0, 0.0
        elif name == "high_below_low":
            high[d, c], low[d, c] = low[d, c], high[d, c].copy()
        else:
            close[d, c], adj_close[d, c] = np.nan, np.nan


def _prices_frame(
    tickers: pl.Series,
    dates: np.ndarray,
    present: np.ndarray,
    matrices: dict[str, np.ndarray],
    ingested_at: datetime,
) -> pl.DataFrame:
    """The present ticker-days in long format; each matrix is freed once its column is taken
    (the caller must hold no other reference to them)."""
    mask_t = present.T
    col_idx, day_idx = np.nonzero(mask_t)
    columns: dict[str, object] = {"ticker": tickers.gather(col_idx), "date": dates[day_idx]}
    del col_idx, day_idx
    for name in list(matrices):
        columns[name] = matrices.pop(name).T[mask_t]  # the matrix is freed here
    return pl.DataFrame(columns).with_columns(
        pl.col("close", "adj_close").fill_nan(None),
        pl.lit(SOURCE).alias("source"),
        pl.lit(ingested_at).alias("ingested_at"),
    )


def _actions_frame(
    tickers: pl.Series, dates: np.ndarray, events: _Corporate, ingested_at: datetime
) -> pl.DataFrame:
    """Split rows (new shares per old share) and dividend rows (cash per share)."""
    split = events.split
    div_rows, div_cols = np.nonzero(events.ex_ok)
    return pl.concat(
        [
            pl.DataFrame(
                {
                    "ticker": tickers.gather(np.flatnonzero(split)),
                    "date": dates[events.split_day[split]],
                    "action": "split",
                    "value": events.split_ratio[split],
                }
            ),
            pl.DataFrame(
                {
                    "ticker": tickers.gather(div_cols),
                    "date": dates[events.ex_day[div_rows, div_cols]],
                    "action": "dividend",
                    "value": events.div_cash[div_rows, div_cols],
                }
            ),
        ]
    ).with_columns(pl.lit(SOURCE).alias("source"), pl.lit(ingested_at).alias("ingested_at"))


def _securities_frame(
    rng: np.random.Generator,
    traits: _Traits,
    shares_last: np.ndarray,
    close_last: np.ndarray,
    ingested_at: datetime,
) -> pl.DataFrame:
    """One profile per ticker as of its last price: name, sector, industry, exchange, cap."""
    n = len(traits.quality)
    sectors = np.array(SECTORS)[traits.sector_idx]
    industry = [_INDUSTRIES[s][k] for s, k in zip(sectors, rng.integers(0, 3, size=n), strict=True)]
    nasdaq_p = np.where(
        np.isin(sectors, ["Information Technology", "Communication Services", "Health Care"]),
        0.65,
        0.25,
    )
    exchange = np.where(rng.random(n) < nasdaq_p, "NASDAQ", "NYSE")
    words = rng.integers(0, len(_NAME_WORDS), size=(n, 2))
    suffix = rng.integers(0, len(_NAME_SUFFIXES), size=n)
    names = [
        f"{_NAME_WORDS[a]} {_NAME_WORDS[b]} {_NAME_SUFFIXES[s]}"
        if a != b
        else f"{_NAME_WORDS[a]} {_NAME_SUFFIXES[s]}"
        for (a, b), s in zip(words, suffix, strict=True)
    ]
    # Drawn last, after every other draw of the market, so adding it changed no other frame.
    float_shares = np.round(shares_last * _float_fraction(rng, n))
    return pl.DataFrame(
        {
            "ticker": traits.tickers,
            "name": names,
            "sector": sectors,
            "industry": industry,
            "exchange": exchange,
            "country": "US",
            "quote_type": "EQUITY",
            "currency": "USD",
            "shares_outstanding": shares_last,
            "float_shares": float_shares,
            "market_cap": close_last * shares_last,
            "source": SOURCE,
            "ingested_at": ingested_at,
        }
    )


def _float_fraction(rng: np.random.Generator, n: int) -> np.ndarray:
    """Share of the shares outstanding that floats: 80-99% for most companies, 20-60% for the
    ~10% that are closely held (a founder, a parent company or a state owns the rest)."""
    closely_held = rng.random(n) < 0.10
    return np.where(closely_held, rng.uniform(0.20, 0.60, size=n), rng.uniform(0.80, 0.99, size=n))


def _membership_frame(
    tickers: pl.Series, dates: np.ndarray, life: _Lifecycle, ingested_at: datetime
) -> pl.DataFrame:
    """One interval per ticker in universe 'demo'; end date only when delisted."""
    return pl.DataFrame(
        {
            "universe": UNIVERSE,
            "ticker": tickers,
            "start_date": dates[life.first],
            "end_date": dates[life.last],
            "delisted": life.delisted,
        }
    ).with_columns(
        pl.when(pl.col("delisted")).then(pl.col("end_date")).alias("end_date"),
        pl.lit(SOURCE).alias("source"),
        pl.lit(ingested_at).alias("ingested_at"),
    )


def _bad_rows_frame(tickers: pl.Series, dates: np.ndarray, defects: _Defects) -> pl.DataFrame:
    """Where the bad rows were planted: ticker, date, kind."""
    return pl.DataFrame(
        {
            "ticker": tickers.gather(defects.bad_col),
            "date": dates[defects.bad_day],
            "kind": np.array(BAD_ROW_KINDS)[defects.bad_kind],
        }
    ).sort("ticker", "date")


def _fundamentals(
    rng: np.random.Generator,
    *,
    dates: np.ndarray,
    end: date,
    traits: _Traits,
    life: _Lifecycle,
    market_cap: np.ndarray,
    shares: np.ndarray,
    cheapness: np.ndarray,
    dividends: np.ndarray,
) -> pl.DataFrame:
    """Quarterly statements from quarter-average market cap, traits and sector parameters;
    ``dividends`` (quarters x tickers) are the cash dividends paid, :func:`_dividends_paid`."""
    period_end = _quarter_ends(dates)
    if len(period_end) == 0:
        return empty(RAW_FUNDAMENTALS)
    listed, quality = life.listed, traits.quality
    sector = (*traits.sector[1:], traits.is_fin)  # earnings yield, margins, debt, ppe, financial
    q_last_day = np.searchsorted(dates, period_end, side="right") - 1  # last trading day <= end
    q_first_day = np.concatenate([[0], q_last_day[:-1] + 1])

    cap_listed = np.where(listed, market_cap, 0.0)
    cap_sum = np.add.reduceat(cap_listed, q_first_day, axis=0)
    day_count = np.add.reduceat(listed.astype(np.int64), q_first_day, axis=0)
    avg_cap = cap_sum / np.maximum(day_count, 1)
    month_idx = (period_end.astype("datetime64[M]") - dates[0].astype("datetime64[M]")).astype(int)

    profile = _company_profile(rng, quality, sector)
    items = _statements(rng, profile, avg_cap, cheapness[month_idx], quality, sector)
    items["shares_outstanding"] = shares[q_last_day]
    items["dividends_paid"] = dividends
    report = _report_dates(rng, profile["lag_base"], period_end)
    valid = (
        (period_end[:, None] >= dates[life.first])
        & (report <= np.minimum(dates[life.last], np.datetime64(end, "D")))
        & (day_count > 0)
    )
    t_idx, q_idx = np.nonzero(valid.T)  # ticker-major: sorted by ticker, then period
    wide = pl.DataFrame(
        {
            "ticker": traits.tickers.gather(t_idx),
            "period_end": period_end[q_idx],
            "report_date": report[q_idx, t_idx],
            **{name: values[q_idx, t_idx] for name, values in items.items()},
        }
    )
    return (
        wide.unpivot(
            index=["ticker", "period_end", "report_date"],
            on=list(items),
            variable_name="item",
        )
        .with_columns(pl.lit("Q").alias("period_type"))
        .sort("ticker", "period_end", "item")
    )


def _quarter_ends(dates: np.ndarray) -> np.ndarray:
    """Calendar quarter ends from the first quarter of ``dates`` up to the last date."""
    first_q = dates[0].astype("datetime64[M]")
    first_q = first_q + (2 - (first_q.astype(int) % 3))  # last month of the first quarter
    quarter_months = np.arange(first_q, dates[-1].astype("datetime64[M]") + 1, 3)
    period_end = (quarter_months + 1).astype("datetime64[D]") - 1
    return period_end[period_end <= dates[-1]]


def _company_profile(
    rng: np.random.Generator, quality: np.ndarray, sector: tuple[np.ndarray, ...]
) -> dict[str, np.ndarray]:
    """Per-ticker fundamentals profile: quality means better margins and ROE, less debt."""
    s_ey, s_nm, s_gm, s_de, s_ppe, is_fin = sector
    n = len(quality)
    z = rng.standard_normal((6, n))
    profile = {
        "roe": np.clip(0.11 + 0.045 * quality + 0.02 * z[0], 0.02, 0.40),
        "net_margin": np.clip(s_nm + 0.035 * quality + 0.02 * z[1], 0.01, 0.35),
        "gross_margin": np.clip(s_gm + 0.08 * quality + 0.05 * z[2], 0.08, 0.95),
        "debt_to_equity": s_de * np.exp(-0.35 * quality + 0.4 * z[3]),
    }
    loss_maker = rng.random(n) < np.where(quality < -0.5, 0.25, 0.04)
    profile["loss_shift"] = np.where(loss_maker, rng.uniform(0.004, 0.015, size=n), 0.0)
    profile["negative_equity"] = rng.random(n) < 0.02
    profile["cash_frac"] = np.where(is_fin, 0.12, rng.uniform(0.03, 0.15, size=n))
    profile["recv_frac"] = rng.uniform(0.05, 0.2, size=n)
    profile["ppe_frac"] = np.clip(s_ppe + 0.05 * z[4], 0.01, 0.6)
    profile["cl_frac"] = 0.12 * np.exp(0.2 * z[5])
    profile["lag_base"] = rng.integers(28, 60, size=n)
    return profile


def _statements(
    rng: np.random.Generator,
    profile: dict[str, np.ndarray],
    avg_cap: np.ndarray,
    c: np.ndarray,
    quality: np.ndarray,
    sector: tuple[np.ndarray, ...],
) -> dict[str, np.ndarray]:
    """The statement items (quarters x tickers, all but shares) in FUNDAMENTAL_ITEMS order;
    earnings are the quarter-average cap x an earnings yield driven by cheapness ``c``."""
    s_ey, is_fin = sector[0], sector[5]
    shape = avg_cap.shape
    earnings_yield = s_ey * np.exp(0.5 * c - 0.1 * quality)
    base_ni = avg_cap * earnings_yield / 4.0
    net_income = (
        base_ni * (1.0 + 0.3 * rng.standard_normal(shape)) - avg_cap * profile["loss_shift"]
    )
    revenue = base_ni / profile["net_margin"] * np.exp(0.05 * rng.standard_normal(shape))
    equity = 4.0 * base_ni / profile["roe"] * np.exp(0.03 * rng.standard_normal(shape))
    debt = profile["debt_to_equity"] * equity
    interest = 0.05 / 4.0 * debt
    pretax = np.where(net_income > 0, net_income / 0.78, net_income)
    non_operating = 0.01 * revenue * rng.standard_normal(shape)
    operating_income = pretax + interest - non_operating
    gross_profit = revenue * profile["gross_margin"] * np.exp(0.02 * rng.standard_normal(shape))
    gross_profit = np.minimum(np.maximum(gross_profit, operating_income + 0.03 * revenue), revenue)
    operating_income = np.minimum(operating_income, gross_profit)
    current_liabilities = profile["cl_frac"] * 4.0 * revenue
    other_liabilities = np.where(is_fin, 6.0, 0.15) * equity
    total_assets = equity + debt + current_liabilities + other_liabilities
    cash = profile["cash_frac"] * total_assets
    return {
        "revenue": revenue,
        "gross_profit": gross_profit,
        "operating_income": operating_income,
        "ebit": operating_income + non_operating,
        "net_income": net_income,
        "total_assets": total_assets,
        "total_equity": np.where(profile["negative_equity"], -0.15 * equity, equity),
        "total_debt": debt,
        "cash": cash,
        "current_assets": cash + profile["recv_frac"] * total_assets,
        "current_liabilities": current_liabilities,
        "net_ppe": profile["ppe_frac"] * total_assets,
        # Derived from the draws above, no draw of their own (the draw order is the output):
        # a fifth of the debt is due within a year (at most half the current liabilities),
        # financials carry preferred stock worth 5% of equity, capital-heavy companies
        # (net PPE > 30% of assets) a minority interest worth 3% of equity.
        "short_term_debt": np.minimum(0.2 * debt, 0.5 * current_liabilities),
        "preferred_stock": np.where(is_fin, 0.05 * equity, 0.0),
        "minority_interest": np.where(profile["ppe_frac"] > 0.3, 0.03 * equity, 0.0),
    }


def _report_dates(
    rng: np.random.Generator, lag_base: np.ndarray, period_end: np.ndarray
) -> np.ndarray:
    """Report date per quarter and ticker: 25-80 days after the period end (Q4 later), rolled
    forward to a weekday."""
    n_q, n = len(period_end), len(lag_base)
    lag = (
        lag_base
        + rng.integers(-3, 4, size=(n_q, n))
        + np.where(np.arange(n_q) % 4 == 3, 10, 0)[:, None]
    )
    lag = np.clip(lag, 25, 78)  # rolling a weekend forward adds at most 2 days
    return np.busday_offset(period_end[:, None] + lag, 0, roll="forward")


def _filter_dates(frame: pl.DataFrame, request: FetchRequest, column: str) -> pl.DataFrame:
    if request.tickers is not None:
        frame = frame.filter(pl.col("ticker").is_in(list(request.tickers)))
    if request.start is not None:
        frame = frame.filter(pl.col(column) >= request.start)
    if request.end is not None:
        frame = frame.filter(pl.col(column) <= request.end)
    return frame


def _filter_per_ticker(frame: pl.DataFrame, request: FetchRequest, column: str) -> pl.DataFrame:
    if not request.per_ticker_start:
        return frame
    starts = pl.DataFrame(
        {
            "ticker": list(request.per_ticker_start),
            "_from": list(request.per_ticker_start.values()),
        },
        schema={"ticker": pl.String, "_from": pl.Date},
    )
    return (
        frame.join(starts, on="ticker", how="left")
        .filter(pl.col("_from").is_null() | (pl.col(column) >= pl.col("_from")))
        .drop("_from")
    )


class DemoSource:
    """The demo market behind the :class:`~quant_pipeline.sources.base.Source` interface.

    Every method returns the cached market (see :func:`generate_market`) filtered by the request:
    ``tickers`` keeps those tickers; ``start``/``end`` bound ``date`` for prices and corporate
    actions, ``report_date`` (when the data became known) for fundamentals, and the interval for
    membership (intervals overlapping the window); ``per_ticker_start`` further bounds prices and
    corporate actions per ticker. Securities are filtered by ticker only.
    """

    name = SOURCE

    def __init__(
        self,
        n_tickers: int = 500,
        start: date = date(2010, 1, 1),
        seed: int = 42,
        end: date | None = None,
    ) -> None:
        self.n_tickers = n_tickers
        self.start = start
        self.seed = seed
        self.end = end

    @property
    def market(self) -> DemoMarket:
        """The whole market (prices included; regenerated if a big one handed them over)."""
        return generate_market(self.n_tickers, self.start, self.end, self.seed)

    def _market(self) -> DemoMarket:
        """The cached market, whose ``prices`` may have been handed over already."""
        return _cached_market(self.n_tickers, self.start, self.end, self.seed, need_prices=False)

    def universe(self) -> list[str]:
        """Every ticker of the demo market, sorted (delisted ones included)."""
        return self._market().securities["ticker"].to_list()

    def prices(self, request: FetchRequest) -> pl.DataFrame:
        """Daily OHLCV rows (RAW_PRICES) with ``date`` in the request window.

        A big market (``RELEASE_PRICES_ROWS``) drops its cached price frame once served."""
        frame = _filter_dates(self.market.prices, request, "date")
        frame = _filter_per_ticker(frame, request, "date")
        _release_prices(_cache_key(self.n_tickers, self.start, self.end, self.seed))
        return frame

    def corporate_actions(self, request: FetchRequest) -> pl.DataFrame:
        """Splits and dividends (RAW_CORPORATE_ACTIONS) dated in the request window."""
        frame = _filter_dates(self._market().corporate_actions, request, "date")
        return _filter_per_ticker(frame, request, "date")

    def fundamentals(self, request: FetchRequest) -> pl.DataFrame:
        """Quarterly items (RAW_FUNDAMENTALS) whose ``report_date`` is in the request window."""
        return _filter_dates(self._market().fundamentals, request, "report_date")

    def securities(self, request: FetchRequest) -> pl.DataFrame:
        """Current profiles (RAW_SECURITIES) of the requested tickers."""
        frame = self._market().securities
        if request.tickers is not None:
            frame = frame.filter(pl.col("ticker").is_in(list(request.tickers)))
        return frame

    def membership(self, request: FetchRequest) -> pl.DataFrame:
        """Membership intervals (RAW_MEMBERSHIP) overlapping the request window."""
        frame = self._market().membership
        if request.tickers is not None:
            frame = frame.filter(pl.col("ticker").is_in(list(request.tickers)))
        if request.end is not None:
            frame = frame.filter(pl.col("start_date") <= request.end)
        if request.start is not None:
            frame = frame.filter(
                pl.col("end_date").is_null() | (pl.col("end_date") >= request.start)
            )
        return frame

"""Point-in-time factor values per (rebalance_date, ticker): the ``factors.values`` table.

Timing rule, enforced here for every column: the row for rebalance date D uses

* prices with ``date < D`` only (``price`` is the close of the ticker's last trading day before D;
  rolling windows end on that day);
* the latest curated.fundamentals row of the ticker with ``available_at < D`` (strictly: a row
  that becomes available on D is not used on D);
* membership intervals that contain D.

Year-over-year growth is computed on the fundamentals frame *before* the as-of join: the
comparison row (same period type, period end one year earlier) was itself available earlier, so
attaching it to its successor adds no information from the future.

Everything is vectorised: rolling windows run once over the price frame with ``.over("ticker")``
and the rows at the last day before each D are picked with ``join_asof``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import date

import polars as pl
import polars.selectors as cs

from quant_pipeline.core.data.calendar import TRADING_DAYS_PER_YEAR, trading_days
from quant_pipeline.core.data.frames import is_sorted_by, require_columns
from quant_pipeline.core.data.schema import CLOSE_PRICE_COLUMNS, FIRST_SHARES
from quant_pipeline.core.data.share_basis import share_multiplier, split_index

MOMENTUM_SKIP = 21  # trading days skipped at the recent end of the 12-1 momentum window
MOMENTUM_LOOKBACK = TRADING_DAYS_PER_YEAR
VOLATILITY_WINDOW = TRADING_DAYS_PER_YEAR
VOLATILITY_MIN_OBS = 126
VOLUME_WINDOW = 63
VOLUME_MIN_OBS = 21
LISTED_WINDOW = 5  # without membership, "in universe" = traded in the last 5 trading days
MAX_STALE_DAYS = 21  # a ticker whose last price is older than this is no longer in the grid
# the most price rows of one ticker any factor reads for a date: the longest window + the base row
PRICE_HISTORY_ROWS = max(MOMENTUM_LOOKBACK, VOLATILITY_WINDOW, VOLUME_WINDOW) + 1
GROWTH_MATCH_TOLERANCE = "20d"  # how far the year-earlier period end may be from exactly 1 year

# Numeric columns of factors.values a strategy may score or filter on.
FACTOR_NAMES: tuple[str, ...] = (
    "price",
    "market_cap",
    "avg_volume",
    "avg_dollar_volume",
    "momentum_12_1",
    "volatility",
    "roe",
    "roa",
    "gross_margin",
    "operating_margin",
    "debt_to_equity",
    "revenue_growth",
    "earnings_growth",
    "quarterly_earnings_growth",
    "pe",
    "peg",
    "ps",
    "earnings_yield",
    "return_on_capital",
    "earnings_yield_approx",
    "return_on_capital_approx",
    "dividend_yield",
)

FACTOR_VALUES_SCHEMA: dict[str, pl.DataType] = {
    "rebalance_date": pl.Date(),
    "ticker": pl.String(),
    "sector": pl.String(),
    **{name: pl.Float64() for name in FACTOR_NAMES},
    "fundamentals_period_end": pl.Date(),
    "fundamentals_available_at": pl.Date(),
    "in_universe": pl.Boolean(),
    "shares_from_profile": pl.Boolean(),
}

PRICE_INPUT = CLOSE_PRICE_COLUMNS  # ticker, date, close, adj_close, volume, daily_return
FUNDAMENTAL_INPUT = (
    "ticker",
    "period_end",
    "period_type",
    "available_at",
    "net_income",
    "total_assets",
    "total_equity",
    "total_debt",
    "cash",
    "current_assets",
    "current_liabilities",
    "net_ppe",
    "shares_outstanding",
    "revenue_ttm",
    "gross_profit_ttm",
    "operating_income_ttm",
    "ebit_ttm",
    "net_income_ttm",
)
# Items of Greenblatt's EV and capital that older warehouses and some sources lack: read when
# present, null otherwise (then counted as 0 in EV and in the working capital, see _compute_ratios).
OPTIONAL_FUNDAMENTAL_INPUT = ("short_term_debt", "preferred_stock", "minority_interest")
# Trailing dividends paid: read when present; null when the source has no dividends line (the S&P
# folder's fundamentals.csv), so dividend_yield is null there, never 0.
OPTIONAL_TTM_INPUT = ("dividends_paid_ttm",)
SECURITY_INPUT = ("ticker", "sector")
MEMBERSHIP_INPUT = ("ticker", "start_date", "end_date")


class FactorInputError(ValueError):
    """An input frame of :func:`factor_values` breaks its contract."""


def _as_date(column: str, dtype: pl.DataType) -> pl.Expr:
    expr = pl.col(column)
    return expr.dt.date() if isinstance(dtype, pl.Datetime) else expr.cast(pl.Date)


def _ratio(num: str | pl.Expr, den: str | pl.Expr, positive_den: bool = True) -> pl.Expr:
    """num / den, null when den is null, zero or (with ``positive_den``) negative."""
    n = pl.col(num) if isinstance(num, str) else num
    d = pl.col(den) if isinstance(den, str) else den
    ok = d > 0 if positive_den else d != 0
    return pl.when(ok).then(n / d).otherwise(None)


def _growth(current: str, previous: str) -> pl.Expr:
    """(current - previous) / |previous|; null when previous is null or 0."""
    prev = pl.col(previous)
    return pl.when(prev != 0).then((pl.col(current) - prev) / prev.abs()).otherwise(None)


def fundamentals_with_growth(fundamentals: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """curated.fundamentals plus revenue_growth, earnings_growth, quarterly_earnings_growth.

    Expects curated.fundamentals (ticker, period_end, period_type 'Q'/'A', available_at, the
    FUNDAMENTAL_ITEMS and the *_ttm columns). Each row is compared with the row of the same ticker
    and period type whose period end is nearest to one year earlier (within 20 days, so 52/53-week
    fiscal calendars match and a missing year gives null, not a two-year growth):

    * revenue_growth = revenue_ttm / revenue_ttm[-1y] - 1 (null when the earlier value <= 0);
    * earnings_growth = (net_income_ttm - net_income_ttm[-1y]) / |net_income_ttm[-1y]|
      (null when the earlier value is 0 or null);
    * quarterly_earnings_growth: the same with the quarter's own net_income, 'Q' rows only.

    Dates looked at: only the row itself and its year-earlier row, which was available earlier.
    """
    lf = fundamentals.lazy()
    schema = lf.collect_schema()
    lf = lf.with_columns(_as_date("available_at", schema["available_at"]).alias("available_at"))
    earlier = lf.select(
        "ticker",
        "period_type",
        pl.col("period_end").alias("_prev_period_end"),
        pl.col("revenue_ttm").alias("_prev_revenue_ttm"),
        pl.col("net_income_ttm").alias("_prev_net_income_ttm"),
        pl.col("net_income").alias("_prev_net_income"),
    ).sort("_prev_period_end")
    return (
        lf.with_columns(pl.col("period_end").dt.offset_by("-1y").alias("_year_earlier"))
        .sort("_year_earlier")
        .join_asof(
            earlier,
            left_on="_year_earlier",
            right_on="_prev_period_end",
            by=["ticker", "period_type"],
            check_sortedness=False,
            strategy="nearest",
            tolerance=GROWTH_MATCH_TOLERANCE,
        )
        .with_columns(
            revenue_growth=_ratio("revenue_ttm", "_prev_revenue_ttm") - 1.0,
            earnings_growth=_growth("net_income_ttm", "_prev_net_income_ttm"),
            quarterly_earnings_growth=pl.when(pl.col("period_type") == "Q")
            .then(_growth("net_income", "_prev_net_income"))
            .otherwise(None),
        )
        .drop("_year_earlier", cs.starts_with("_prev_"), strict=False)
    )


def factor_values(
    prices: pl.DataFrame | pl.LazyFrame,
    fundamentals: pl.DataFrame | pl.LazyFrame,
    securities: pl.DataFrame | pl.LazyFrame,
    rebalance_dates: Iterable[date] | pl.Series,
    membership: pl.DataFrame | pl.LazyFrame | None = None,
    *,
    universe: str | None = None,
    max_stale_days: int = MAX_STALE_DAYS,
    share_basis: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The ``factors.values`` table: one row per (rebalance_date, ticker).

    Inputs (extra columns are ignored):

    * ``prices`` — curated.prices: ticker, date, close, adj_close, volume, daily_return;
    * ``fundamentals`` — curated.fundamentals: ticker, period_end, period_type, available_at, the
      FUNDAMENTAL_ITEMS (short_term_debt, preferred_stock and minority_interest
      optional) and revenue/gross_profit/operating_income/ebit/net_income ``_ttm``;
    * ``securities`` — curated.securities: ticker, sector and optionally shares_outstanding;
    * ``membership`` — curated.membership: ticker, start_date, end_date (null = still a member)
      and optionally universe (filtered to ``universe`` when given). None or empty = unknown.

    Dates looked at for rebalance D (see the module docstring): prices with date < D,
    fundamentals with available_at < D, membership on D. Let t be the last trading day (a date of
    the price calendar) before D:

    * price = close of the ticker's last row before D; rows whose last price is more than
      ``max_stale_days`` trading days before t are dropped, as are rebalance dates with no
      trading day before them. A ticker appears only if it has a price before D.
    * avg_volume / avg_dollar_volume: mean of volume / close*volume over the ticker's last 63
      rows up to t (null with fewer than 21 rows).
    * volatility: std of daily_return over the ticker's last 252 rows up to t, times sqrt(252)
      (null with fewer than 126 returns).
    * momentum_12_1 = adj_close(t-21) / adj_close(t-252) - 1, offsets counted in market trading
      days; each end takes the ticker's last adj_close on or before that day (null when the ticker
      has no price that far back).
    * fundamentals: the ticker's row with the latest available_at < D (ties: latest period_end,
      then 'Q' over 'A'); growth columns from :func:`fundamentals_with_growth`.
    * market_cap = price * shares_outstanding of that row. Only when the row lacks shares are the
      securities profile's shares used (:func:`profile_shares`: the first profile on file, so a
      refresh storing a new profile moves no past value); the profile is not point in time, so this
      fallback is a lookahead and such rows carry ``shares_from_profile = true``. With
      ``share_basis`` (curated.share_basis_events) the reported shares are first put on the basis of
      the price (:func:`quant_pipeline.core.data.share_basis.share_multiplier` with the period end
      of the row and the price's date), so a split between the report and the price, or a price file
      restated for later splits, does not divide the market cap by the split ratio; and the volumes
      of an avg_volume window that holds an as-traded split are put on t's basis first
      (:func:`quant_pipeline.core.data.share_basis.split_index`).
    * roe = net_income_ttm / total_equity, debt_to_equity = total_debt / total_equity (both null
      when equity <= 0); roa = net_income_ttm / total_assets; gross/operating margin over
      revenue_ttm; pe = market_cap / net_income_ttm (null when earnings <= 0); peg = pe /
      (earnings_growth * 100) (null when growth <= 0); ps = market_cap / revenue_ttm;
      earnings_yield = ebit_ttm / EV and return_on_capital = ebit_ttm / (NWC + net_ppe) by
      Greenblatt's definitions (:func:`greenblatt_enterprise_value`, :func:`greenblatt_capital`;
      docs/strategies.md), null when the denominator <= 0; the earlier approximations are kept as
      earnings_yield_approx = ebit_ttm / (market_cap + total_debt - cash) and
      return_on_capital_approx = ebit_ttm / (current_assets - current_liabilities + net_ppe).
      Missing inputs give null, never zero, except short_term_debt, preferred_stock and
      minority_interest (optional columns), which count as 0 when null.
    * dividend_yield = dividends_paid_ttm / market_cap: the cash dividends of the same
      fundamentals row (trailing four quarters on a 'Q' row, the year on an 'A' row; optional
      column, null when absent) over the market cap at t; null when market_cap <= 0 or the
      dividends are unknown, 0 for a company that reported paying none.
    * in_universe: with membership, an interval with start_date <= D and (end_date null or
      end_date >= D); without, the ticker has a price in the 5 trading days up to t.
    """
    _check_inputs(prices, fundamentals, securities, membership)
    calendar, rebalances = _rebalance_calendar(prices, rebalance_dates)
    px = _price_features(prices, share_basis)
    grid = _price_grid(rebalances, px, calendar, max_stale_days)
    grid = _join_fundamentals(grid, fundamentals)
    grid = _join_securities(grid, securities)
    grid = _rebase_shares(grid, share_basis)
    grid = _attach_universe(grid, membership, universe)
    return (
        _compute_ratios(grid)
        .select([pl.col(c).cast(t) for c, t in FACTOR_VALUES_SCHEMA.items()])
        .sort("rebalance_date", "ticker")
    )


def _check_inputs(
    prices: pl.DataFrame | pl.LazyFrame,
    fundamentals: pl.DataFrame | pl.LazyFrame,
    securities: pl.DataFrame | pl.LazyFrame,
    membership: pl.DataFrame | pl.LazyFrame | None,
) -> None:
    """Raise :class:`FactorInputError` naming the first input frame that lacks a column."""
    require_columns(prices, PRICE_INPUT, "curated.prices", FactorInputError)
    require_columns(fundamentals, FUNDAMENTAL_INPUT, "curated.fundamentals", FactorInputError)
    require_columns(securities, SECURITY_INPUT, "curated.securities", FactorInputError)
    if membership is not None:
        require_columns(membership, MEMBERSHIP_INPUT, "curated.membership", FactorInputError)


def _rebalance_calendar(
    prices: pl.DataFrame | pl.LazyFrame, rebalance_dates: Iterable[date] | pl.Series
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The price calendar (date, day_idx) and each rebalance date with ``t_idx``, the index of
    the last trading day before it (rebalance dates with none are dropped)."""
    days = trading_days(prices)
    calendar = (
        pl.DataFrame({"date": days})
        .with_row_index("day_idx")
        .with_columns(pl.col("day_idx").cast(pl.Int64))
    )
    dates = pl.Series("rebalance_date", list(rebalance_dates), dtype=pl.Date).unique().sort()
    rebalances = (
        pl.DataFrame({"rebalance_date": dates})
        .join_asof(
            calendar.rename({"date": "_t", "day_idx": "t_idx"}),
            left_on="rebalance_date",
            right_on="_t",
            allow_exact_matches=False,
        )
        .drop_nulls("t_idx")
        .drop("_t")
    )
    return calendar, rebalances


def _price_features(
    prices: pl.DataFrame | pl.LazyFrame, share_basis: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Prices sorted by (ticker, date) with an integer ticker id ``_tid`` and, per row, the
    rolling volume, volatility and 12-1 momentum up to that row. With ``share_basis``, the
    volumes of a window holding an as-traded split are put on the row's basis before the mean
    (volume / split index x the row's split index)."""
    # Sorted by (ticker, date): cheap when the input already is (as the warehouse returns it).
    # An integer ticker id (run-length over the sorted frame) keys every window and asof join:
    # hashing 15M strings several times costs more than the factor maths.
    px = (
        prices.lazy()
        .select(
            pl.col("ticker").cast(pl.String),
            pl.col("date").cast(pl.Date),
            *(pl.col(c).cast(pl.Float64) for c in PRICE_INPUT[2:]),
        )
        .collect()
    )
    # One pass over the strings (rle_id) gives the ids and, with a native sortedness test of the
    # ticker column, proves the (ticker, date) order; flagged sorted, the ids group as slices.
    px = px.with_columns(_tid=pl.col("ticker").rle_id())
    if not is_sorted_by(px, ["ticker", "date"]):
        px = px.sort("ticker", "date").with_columns(_tid=pl.col("ticker").rle_id())
    px = px.with_columns(pl.col("_tid").set_sorted(), _k=split_index(px, share_basis))
    return px.with_columns(
        avg_volume=(pl.col("volume") / pl.col("_k"))
        .rolling_mean(VOLUME_WINDOW, min_samples=VOLUME_MIN_OBS)
        .over("_tid")
        * pl.col("_k"),
        avg_dollar_volume=(pl.col("close") * pl.col("volume"))
        .rolling_mean(VOLUME_WINDOW, min_samples=VOLUME_MIN_OBS)
        .over("_tid"),
        volatility=pl.col("daily_return")
        .rolling_std(VOLATILITY_WINDOW, min_samples=VOLATILITY_MIN_OBS)
        .over("_tid")
        * math.sqrt(TRADING_DAYS_PER_YEAR),
        momentum_12_1=_ratio(
            _lag_within("adj_close", MOMENTUM_SKIP), _lag_within("adj_close", MOMENTUM_LOOKBACK)
        )
        - 1.0,
    )


def _price_grid(
    rebalances: pl.DataFrame, px: pl.DataFrame, calendar: pl.DataFrame, max_stale_days: int
) -> pl.DataFrame:
    """One row per (rebalance date, ticker listed before it): the ticker's last price row before
    the date, dropped when older than ``max_stale_days`` trading days before t."""
    new_ticker = pl.col("_tid") != pl.col("_tid").shift()
    first_seen = px.filter(new_ticker.fill_null(True)).select(
        "_tid", "ticker", pl.col("date").alias("_first")
    )
    return (
        rebalances.join(first_seen, how="cross")
        .filter(pl.col("_first") < pl.col("rebalance_date"))
        .drop("_first")
        .sort("rebalance_date")
        .join_asof(
            px.select(
                "_tid",
                pl.col("date").alias("_price_date"),
                pl.col("close").alias("price"),
                "avg_volume",
                "avg_dollar_volume",
                "volatility",
                "momentum_12_1",
            ),
            left_on="rebalance_date",
            right_on="_price_date",
            by="_tid",
            check_sortedness=False,
            allow_exact_matches=False,
        )
        .join(calendar.rename({"date": "_price_date", "day_idx": "_price_idx"}), on="_price_date")
        .filter(pl.col("t_idx") - pl.col("_price_idx") <= max_stale_days)
    )


def _lag_within(column: str, n: int) -> pl.Expr:
    """``column`` n rows earlier for the same ticker (frame sorted by ``_tid``, date), else null.

    A plain shift plus a same-ticker test: as exact as ``shift(n).over(...)`` on a sorted frame,
    without grouping.
    """
    same = pl.col("_tid").shift(n) == pl.col("_tid")
    return pl.when(same).then(pl.col(column).shift(n)).otherwise(None)


def _join_fundamentals(
    grid: pl.DataFrame, fundamentals: pl.DataFrame | pl.LazyFrame
) -> pl.DataFrame:
    items = [c for c in FUNDAMENTAL_INPUT if c not in ("ticker", "period_type", "available_at")]
    optional = (*OPTIONAL_FUNDAMENTAL_INPUT, *OPTIONAL_TTM_INPUT)
    items += optional
    with_growth = fundamentals_with_growth(fundamentals)
    present = set(with_growth.collect_schema().names())
    fund = (
        with_growth.with_columns(
            pl.lit(None, pl.Float64).alias(c) for c in optional if c not in present
        )
        .select(
            pl.col("ticker").cast(pl.String),
            "period_type",
            pl.col("available_at").alias("_available"),
            pl.col("available_at").alias("fundamentals_available_at"),
            pl.col("period_end").alias("fundamentals_period_end"),
            *(pl.col(c).cast(pl.Float64) for c in items if c != "period_end"),
            "revenue_growth",
            "earnings_growth",
            "quarterly_earnings_growth",
        )
        .drop_nulls("_available")
        # One row per (ticker, available_at): latest period_end, then quarterly before annual.
        .sort("ticker", "_available", "fundamentals_period_end", pl.col("period_type") == "Q")
        .unique(subset=["ticker", "_available"], keep="last")
        .drop("period_type")
        .sort("_available")
        .collect()
    )
    return grid.join_asof(
        fund,
        left_on="rebalance_date",
        right_on="_available",
        by="ticker",
        check_sortedness=False,
        allow_exact_matches=False,
    )


def profile_shares(columns: Sequence[str]) -> pl.Expr:
    """The profile shares a historical market cap falls back on: the first profile's
    (``first_shares_outstanding`` of curated.securities) when the frame has them, else its
    ``shares_outstanding``; null when it has neither."""
    if FIRST_SHARES in columns:
        return pl.col(FIRST_SHARES)
    return pl.col("shares_outstanding") if "shares_outstanding" in columns else pl.lit(None)


def _join_securities(grid: pl.DataFrame, securities: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    sec = securities.lazy()
    sec = sec.select(
        pl.col("ticker").cast(pl.String),
        pl.col("sector").cast(pl.String),
        profile_shares(sec.collect_schema().names()).cast(pl.Float64).alias("_profile_shares"),
    ).collect()
    dupes = sec.filter(pl.col("ticker").is_duplicated()).get_column("ticker").unique().sort()
    if len(dupes):
        raise FactorInputError(
            f"curated.securities: ticker must be unique; duplicated: {dupes.head(10).to_list()}"
        )
    return grid.join(sec, on="ticker", how="left").with_columns(
        shares_from_profile=pl.col("shares_outstanding").is_null()
        & pl.col("_profile_shares").is_not_null(),
        shares_outstanding=pl.coalesce("shares_outstanding", "_profile_shares"),
    )


def _rebase_shares(grid: pl.DataFrame, share_basis: pl.DataFrame | None) -> pl.DataFrame:
    """shares_outstanding on the basis of the price of ``_price_date`` (profile counts as is)."""
    if share_basis is None or share_basis.is_empty():
        return grid
    rows = grid.select(
        "ticker",
        "_price_date",
        _period=pl.when(pl.col("shares_from_profile"))
        .then(None)
        .otherwise(pl.col("fundamentals_period_end")),
    )
    factor = share_multiplier(rows, share_basis, period="_period", price_date="_price_date")
    return grid.with_columns(pl.col("shares_outstanding") * factor)


def _attach_universe(
    grid: pl.DataFrame,
    membership: pl.DataFrame | pl.LazyFrame | None,
    universe: str | None,
) -> pl.DataFrame:
    members = None
    if membership is not None:
        members = membership.lazy()
        if universe is not None:
            require_columns(membership, ["universe"], "curated.membership", FactorInputError)
            members = members.filter(pl.col("universe") == universe)
        members = members.select(
            pl.col("ticker").cast(pl.String),
            pl.col("start_date").cast(pl.Date),
            pl.col("end_date").cast(pl.Date),
        ).collect()
        if members.is_empty():
            members = None
    if members is None:
        return grid.with_columns(in_universe=pl.col("_price_idx") > pl.col("t_idx") - LISTED_WINDOW)
    flags = (
        grid.select("rebalance_date", "ticker")
        .join(members, on="ticker", how="inner")
        .group_by("rebalance_date", "ticker")
        .agg(
            (
                (pl.col("start_date") <= pl.col("rebalance_date"))
                & (pl.col("end_date").is_null() | (pl.col("end_date") >= pl.col("rebalance_date")))
            )
            .any()
            .alias("in_universe")
        )
    )
    return grid.join(flags, on=["rebalance_date", "ticker"], how="left").with_columns(
        pl.col("in_universe").fill_null(False)
    )


def _compute_ratios(grid: pl.DataFrame) -> pl.DataFrame:
    col = pl.col
    grid = grid.with_columns(market_cap=col("price") * col("shares_outstanding"))
    grid = grid.with_columns(
        roe=_ratio("net_income_ttm", "total_equity"),
        roa=_ratio("net_income_ttm", "total_assets"),
        gross_margin=_ratio("gross_profit_ttm", "revenue_ttm"),
        operating_margin=_ratio("operating_income_ttm", "revenue_ttm"),
        debt_to_equity=_ratio("total_debt", "total_equity"),
        pe=_ratio("market_cap", "net_income_ttm"),
        ps=_ratio("market_cap", "revenue_ttm"),
        earnings_yield_approx=_ratio(
            "ebit_ttm", col("market_cap") + col("total_debt") - col("cash")
        ),
        return_on_capital_approx=_ratio(
            "ebit_ttm", col("current_assets") - col("current_liabilities") + col("net_ppe")
        ),
        earnings_yield=_ratio("ebit_ttm", greenblatt_enterprise_value()),
        return_on_capital=_ratio("ebit_ttm", greenblatt_capital()),
        dividend_yield=_ratio("dividends_paid_ttm", "market_cap"),
    )
    return grid.with_columns(peg=_ratio("pe", col("earnings_growth") * 100.0))


def greenblatt_working_capital() -> pl.Expr:
    """Net working capital as Greenblatt counts it: ``(current_assets - cash) -
    (current_liabilities - short_term_debt)`` (cash and short-term interest-bearing debt left
    out; a null short_term_debt counts as 0)."""
    col = pl.col
    return (col("current_assets") - col("cash")) - (
        col("current_liabilities") - col("short_term_debt").fill_null(0.0)
    )


def greenblatt_excess_cash() -> pl.Expr:
    """Cash beyond what the working capital needs: ``max(0, cash - max(0, -NWC))`` with NWC
    :func:`greenblatt_working_capital` (cash first covers a working-capital shortfall)."""
    shortfall = pl.max_horizontal(-greenblatt_working_capital(), pl.lit(0.0))
    return pl.max_horizontal(pl.col("cash") - shortfall, pl.lit(0.0))


def greenblatt_enterprise_value() -> pl.Expr:
    """``market_cap + total_debt + preferred_stock + minority_interest - excess cash``
    (Greenblatt 2006; a null preferred stock or minority interest counts as 0)."""
    col = pl.col
    return (
        col("market_cap")
        + col("total_debt")
        + col("preferred_stock").fill_null(0.0)
        + col("minority_interest").fill_null(0.0)
        - greenblatt_excess_cash()
    )


def greenblatt_capital() -> pl.Expr:
    """Tangible capital employed: :func:`greenblatt_working_capital` + ``net_ppe``."""
    return greenblatt_working_capital() + pl.col("net_ppe")

"""Curated frames from raw frames: latest vintages, adjusted prices, point-in-time fundamentals.

Pure polars. Every function takes frames in the raw schemas of
:mod:`quant_pipeline.core.data.schema` and returns frames in the curated layouts of
``docs/design.md``. None of them looks at a calendar: timing (which rows a rebalance may use) is
decided downstream from ``date`` and ``available_at``.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, date, datetime
from typing import NamedTuple

import polars as pl

from quant_pipeline.core.data.frames import is_sorted_by, require_columns
from quant_pipeline.core.data.price_rules import (
    SpikeRule,
    fails_row_rules,
    plausibility_reasons,
    row_reason,
)
from quant_pipeline.core.data.schema import (
    ACTION_TYPES,
    CURATED_PRICE_COLUMNS,
    FIRST_SHARES,
    FLOW_ITEMS,
    FUNDAMENTAL_ITEMS,
    PERIOD_TYPES,
    RAW_PRICES,
)
from quant_pipeline.core.data.share_basis import PRICE_JUMP_TOLERANCE

log = logging.getLogger(__name__)

TTM_COLUMNS: tuple[str, ...] = tuple(f"{item}_ttm" for item in FLOW_ITEMS)
CURATED_FUNDAMENTAL_COLUMNS: tuple[str, ...] = (
    "ticker",
    "period_end",
    "period_type",
    "report_date",
    "available_at",
    "ingested_at",
    *FUNDAMENTAL_ITEMS,
    *TTM_COLUMNS,
)
CURATED_SECURITY_COLUMNS: tuple[str, ...] = (
    "ticker",
    "name",
    "sector",
    "industry",
    "exchange",
    "country",
    "quote_type",
    "currency",
    "shares_outstanding",
    "float_shares",
    "market_cap",
    "source",
    "ingested_at",
)
CURATED_MEMBERSHIP_COLUMNS: tuple[str, ...] = ("universe", "ticker", "start_date", "end_date")
CURATED_ACTION_COLUMNS: tuple[str, ...] = ("ticker", "date", "action", "value")

# Adjacent fiscal quarter ends lie 13 or 14 weeks (or ~3 calendar months) apart; a skipped
# quarter is ~180 days. Anything inside this window counts as consecutive.
_QUARTER_GAP_DAYS = (70, 110)

# Items that are counts and cannot be negative. A vendor's derived estimate can be (the S&P 500
# dataset's "Estimated Shares Outstanding" is net income / EPS, negative when their signs differ):
# such a value is unknown, not a reason to refuse the whole table.
_NON_NEGATIVE_ITEMS = ("shares_outstanding",)

# Items stored as amounts whatever sign the source prints: cash-flow statements show dividends
# paid as an outflow (Yahoo's "Cash Dividends Paid" -15.2e9 for AAPL's FY2024), the curated item
# is the amount paid (15.2e9).
DIVIDENDS_PAID = "dividends_paid"
_UNSIGNED_ITEMS = (DIVIDENDS_PAID,)


def _unsigned(rows: pl.DataFrame) -> pl.DataFrame:
    """Long item rows with the value of every ``_UNSIGNED_ITEMS`` item made non-negative."""
    return rows.with_columns(
        pl.when(pl.col("item").is_in(_UNSIGNED_ITEMS))
        .then(pl.col("value").abs())
        .otherwise(pl.col("value"))
        .alias("value")
    )


class CuratedPrices(NamedTuple):
    """``prices``: curated.prices rows. ``rejected``: raw rows refused, with a ``reason``."""

    prices: pl.DataFrame
    rejected: pl.DataFrame


# Raw price rows curated at once: curation is per ticker (latest vintage, row rules, spikes,
# adjusted close and daily return look at one ticker's rows only), so curating tickers in
# batches of about this many rows gives the same rows as curating them all, in bounded memory.
PRICE_BATCH_ROWS = 2_000_000


def ticker_batches(rows: pl.DataFrame, max_rows: int = PRICE_BATCH_ROWS) -> list[list[str]]:
    """``rows`` (ticker, rows: the raw rows per ticker) cut into consecutive runs of tickers in
    ticker order, each holding at most ``max_rows`` rows (a ticker with more gets a batch of its
    own). Every ticker lands in exactly one batch; none are empty."""
    require_columns(rows, ["ticker", "rows"], "ticker_batches")
    if max_rows < 1:
        raise ValueError(f"ticker_batches: max_rows must be >= 1, got {max_rows}")
    batches: list[list[str]] = []
    current: list[str] = []
    size = 0
    for ticker, n in rows.sort("ticker").select("ticker", "rows").iter_rows():
        if current and size + n > max_rows:
            batches.append(current)
            current, size = [], 0
        current.append(ticker)
        size += n
    if current:
        batches.append(current)
    return batches


def latest_rows(frame: pl.DataFrame, key: list[str] | tuple[str, ...]) -> pl.DataFrame:
    """One row per ``key``: the one with the latest ``ingested_at`` (ties: the later row).

    Expects the ``key`` columns and ``ingested_at``. Row order of the result follows the key.
    A frame already in strictly increasing key order (raw.prices as the warehouse returns it) is
    returned as is after one O(n) check; otherwise a stable sort and a keep-the-last-row-of-each-
    key filter, with no hashing of the key (15M string keys cost seconds to hash).
    """
    key = list(key)
    require_columns(frame, [*key, "ingested_at"], "latest_rows")
    if is_sorted_by(frame, key):
        return frame
    ordered = frame.sort([*key, "ingested_at"], nulls_last=False, maintain_order=True)
    last_of_key = pl.any_horizontal(pl.col(c).ne_missing(pl.col(c).shift(-1)) for c in key)
    return ordered.filter(last_of_key.fill_null(True))


# --------------------------------------------------------------------------------------------
# Prices


def adjusted_close(prices: pl.DataFrame, actions: pl.DataFrame | None) -> pl.DataFrame:
    """Return ``prices`` with ``adj_close`` recomputed from as-traded close and actions.

    ``prices``: ticker, date, close (as traded), one row per (ticker, date); other columns kept.
    ``actions``: ticker, date, action (ACTION_TYPES), value. Yahoo/CRSP convention:
    ``adj_close == close`` on each ticker's last date; a dividend ``d`` (cash per share) going ex
    on ``t`` multiplies every price before ``t`` by ``1 - d / close(t-1)``; a spin-off
    distributing ``d`` of value per share by ``close(t) / (close(t) + d)``, so the return of t is
    the holder's ``(close(t) + d) / close(t-1) - 1`` (the dividend formula, exact for small cash
    amounts, would overstate a distribution of half the price); a split of ratio ``r`` on ``t``
    by ``1 / r``; a stock dividend of ``v`` new shares per share by ``1 / (1 + v)`` (neither when
    the close does not fall with it: see :func:`_price_multipliers`). An action dated on a
    non-trading day applies from the next trading row; actions after a ticker's last row (or on
    its first) change nothing. Looks at the whole history: this is a restatement of past prices,
    not something a rebalance computes.
    """
    require_columns(prices, ["ticker", "date", "close"], "adjusted_close prices")
    out = prices.sort(["ticker", "date"]).with_row_index("_row")
    if actions is None or actions.height == 0:
        return out.with_columns(adj_close=pl.col("close")).drop("_row")
    require_columns(actions, ["ticker", "date", "action", "value"], "adjusted_close actions")
    unknown = actions.filter(~pl.col("action").is_in(ACTION_TYPES))
    if unknown.height:
        raise ValueError(
            f"adjusted_close: unknown action types {unknown['action'].unique().to_list()}; "
            f"expected {ACTION_TYPES}"
        )
    rows = out.select(
        "ticker",
        "date",
        prev_close=pl.col("close").shift(1).over("ticker"),
        row_close=pl.col("close"),
        is_first=pl.int_range(pl.len()).over("ticker") == 0,
    )
    # Each action lands on the first trading row on or after its date.
    landed = (
        actions.select("ticker", "date", "action", "value")
        .sort(["ticker", "date"])
        .join_asof(
            rows.rename({"date": "row_date"}).sort(["ticker", "row_date"]),
            left_on="date",
            right_on="row_date",
            by="ticker",
            strategy="forward",
            check_sortedness=False,
        )
        .filter(pl.col("row_date").is_not_null() & ~pl.col("is_first"))
        .pipe(_price_multipliers)
        .group_by(["ticker", "row_date"])
        .agg(pl.col("multiplier").product())
        .rename({"row_date": "date"})
    )
    # factor(t) = product of the multipliers of every action strictly after t: shift the
    # multipliers back one row and take the reverse cumulative product per ticker.
    return (
        out.join(landed, on=["ticker", "date"], how="left")
        .sort("_row")
        .with_columns(
            _after=pl.col("multiplier").fill_null(1.0).shift(-1, fill_value=1.0).over("ticker")
        )
        .with_columns(
            adj_close=pl.col("close") * pl.col("_after").cum_prod(reverse=True).over("ticker")
        )
        .drop("_row", "multiplier", "_after")
    )


def _fill_adjusted_close(accepted: pl.DataFrame, actions: pl.DataFrame | None) -> pl.DataFrame:
    """``accepted`` with each null adj_close computed by :func:`adjusted_close` from its close
    and the corporate actions (only the tickers lacking one go through it)."""
    missing = accepted.filter(pl.col("adj_close").is_null()).get_column("ticker").unique()
    if not missing.len():
        return accepted
    if actions is None or actions.is_empty():
        # no splits or dividends at all (a price-only vendor folder): the adjusted close is the
        # close, as adjusted_close would return, without re-sorting and joining 15M rows
        return accepted.with_columns(adj_close=pl.coalesce("adj_close", "close"))
    needed = accepted.filter(pl.col("ticker").is_in(missing.implode()))
    computed = adjusted_close(needed.select("ticker", "date", "close"), actions)
    return (
        accepted.join(
            computed.select("ticker", "date", _computed="adj_close"),
            on=["ticker", "date"],
            how="left",
        )
        .with_columns(adj_close=pl.coalesce("adj_close", "_computed"))
        .drop("_computed")
    )


def _price_multipliers(landed: pl.DataFrame) -> pl.DataFrame:
    """``landed`` actions (action, value, prev_close, row_close of their first trading row) plus
    ``multiplier``, the factor of every earlier price (see :func:`adjusted_close`).

    A split or stock dividend of ratio r whose close does not fall to about 1/r that day (within
    ``share_basis.PRICE_JUMP_TOLERANCE``) is already in the prices (a split-adjusted file with
    its splits also on file): it gets 1, with a warning, instead of adjusting twice.
    """
    action, value = pl.col("action"), pl.col("value")
    ratio = pl.when(action == "split").then(value).otherwise(1.0 + value)
    miss = (pl.col("row_close") / pl.col("prev_close") * ratio).log().abs()
    restated = action.is_in(["split", "stock_dividend"]) & (
        miss > math.log(PRICE_JUMP_TOLERANCE)
    ).fill_null(False)
    out = landed.with_columns(
        _restated=restated,
        multiplier=pl.when(action.is_in(["split", "stock_dividend"]))
        .then(1.0 / ratio)
        .when(action == "spinoff")
        .then(pl.col("row_close") / (pl.col("row_close") + value))
        .otherwise(1.0 - value / pl.col("prev_close")),
    )
    skipped = out.filter(pl.col("_restated"))
    if skipped.height:
        log.warning(
            "adjusted_close: %d splits / stock dividends on file do not show in the close "
            "(already adjusted for them), not applied again: %s",
            skipped.height,
            skipped.select("ticker", "date", "action", "value").head(5).rows(),
        )
    return out.with_columns(
        multiplier=pl.when(pl.col("_restated")).then(1.0).otherwise(pl.col("multiplier"))
    ).drop("_restated")


def curate_prices(
    raw_prices: pl.DataFrame,
    actions: pl.DataFrame | None = None,
    as_of: date | None = None,
    spikes: SpikeRule | None = None,
) -> CuratedPrices:
    """Validated daily prices with adjusted close and daily return, plus the rows refused.

    ``raw_prices``: raw.prices rows (RAW_PRICES) of ONE source. ``actions``: raw or curated
    corporate actions (ticker, date, action, value) used only where the source gives no adj_close.

    Steps: keep the latest ``ingested_at`` per (ticker, date); refuse rows with a null, zero or
    negative close, a non-positive adj_close, high < low, negative volume or a non-finite value
    (returned in ``rejected`` with a ``reason``, rules in :mod:`core.data.price_rules`); then,
    when ``as_of`` or ``spikes`` is given, quarantine the implausible rows among the rest (dated
    after ``as_of``; one-day spikes that reverse, see ``SpikeRule``), also into ``rejected``
    with their reason; a null adj_close is taken from
    :func:`adjusted_close` (close and actions of the accepted rows); ``daily_return`` is
    ``adj_close / previous adj_close of the ticker - 1`` (null on a ticker's first row). Null
    open/high/low stay null. Output: ``CURATED_PRICE_COLUMNS`` sorted by ticker, date.
    """
    require_columns(raw_prices, tuple(RAW_PRICES), "curate_prices")
    source = pl.col("source").drop_nulls()
    if raw_prices.select((source != source.first()).any()).item():
        sources = raw_prices["source"].unique().drop_nulls().to_list()
        raise ValueError(
            f"curate_prices: expected rows of one source, got {sorted(sources)}; "
            "filter raw.prices by source first"
        )
    latest = latest_rows(raw_prices, ["ticker", "date"])
    bad = fails_row_rules()
    latest = latest.with_columns(_bad=bad)
    rejected = latest.filter(pl.col("_bad")).drop("_bad").with_columns(reason=row_reason())
    if as_of is not None or spikes is not None:
        latest, implausible = _quarantine(latest, as_of, spikes)
        rejected = pl.concat([rejected, implausible], how="vertical")
    rejected = rejected.sort(["ticker", "date"])
    # Only the output columns are copied by the filter (source and ingested_at are 1/4 of a row).
    keep = [c for c in CURATED_PRICE_COLUMNS if c != "daily_return"]
    if rejected.height:
        accepted = latest.select(*keep, "_bad").filter(~pl.col("_bad")).drop("_bad")
    else:
        accepted = latest.select(keep)
    del latest
    accepted = _fill_adjusted_close(accepted, actions)
    if not is_sorted_by(accepted, ["ticker", "date"]):
        accepted = accepted.sort(["ticker", "date"])
    # Sorted by (ticker, date): the previous row is the ticker's previous day except on each
    # ticker's first row, found from the run lengths of ticker (no group-by, no shifted copy of
    # 15M strings: a third of the transient memory of an expression with .over("ticker")).
    adj = accepted.get_column("adj_close")
    daily_return = adj / adj.shift() - 1.0
    if accepted.height:
        runs = accepted.get_column("ticker").rle().struct.field("len")
        daily_return = daily_return.scatter(runs.cum_sum().shift(1, fill_value=0), None)
    prices = accepted.with_columns(daily_return.alias("daily_return")).select(CURATED_PRICE_COLUMNS)
    if rejected.height:
        log.warning("curate_prices: rejected %d rows", rejected.height)
    return CuratedPrices(prices=prices, rejected=rejected)


def _quarantine(
    latest: pl.DataFrame, as_of: date | None, spikes: SpikeRule | None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split ``latest`` (with ``_bad``) into rows to keep and implausible rows (raw columns +
    reason). Rows already ``_bad`` are kept for the caller's filter and never judged here."""
    # the rules read four columns: copying only those (and each row's place) instead of every
    # raw column keeps a second copy of 15M raw rows out of memory
    good = (
        latest.select("ticker", "date", "close", "adj_close", "_bad")
        .with_row_index("_at")
        .filter(~pl.col("_bad"))
    )
    if not is_sorted_by(good, ["ticker", "date"]):
        good = good.sort(["ticker", "date"])
    reason = plausibility_reasons(good, as_of, spikes)
    flagged = reason.is_not_null()
    if not flagged.any():
        return latest, latest.clear().drop("_bad").with_columns(reason=pl.lit(None, pl.String))
    implausible = (
        latest[good["_at"].filter(flagged)].drop("_bad").with_columns(reason=reason.filter(flagged))
    )
    for row in implausible.head(20).iter_rows(named=True):
        log.warning(
            "curate_prices: quarantined %s %s: %s", row["ticker"], row["date"], row["reason"]
        )
    keys = implausible.select("ticker", "date", _out=pl.lit(True))
    marked = latest.join(keys, on=["ticker", "date"], how="left", maintain_order="left")
    marked = marked.with_columns(_bad=pl.col("_bad") | pl.col("_out").fill_null(False))
    return marked.drop("_out"), implausible


# --------------------------------------------------------------------------------------------
# Fundamentals


def curate_fundamentals(
    raw_fundamentals: pl.DataFrame, quarter_lag_days: int = 45, annual_lag_days: int = 90
) -> pl.DataFrame:
    """Wide point-in-time fundamentals: one row per (ticker, period_end, period_type).

    ``raw_fundamentals``: raw.fundamentals rows (long: ticker, period_end, period_type, item,
    value, report_date, source, ingested_at), any number of vintages.

    The latest vintage of each (ticker, period_end, period_type, item) is used; items outside
    FUNDAMENTAL_ITEMS are ignored and missing items are null columns. ``report_date`` is the
    latest report date among the period's items; ``available_at`` is ``report_date`` when known,
    else ``period_end`` + ``quarter_lag_days`` ('Q') or ``annual_lag_days`` ('A');
    ``ingested_at`` is the latest among the items used. A negative value of a count
    (``shares_outstanding``) is impossible and becomes null (logged); ``dividends_paid`` is the
    amount paid, its sign dropped (cash-flow statements print it negative). ``<item>_ttm`` for
    FLOW_ITEMS: on a quarterly row, the sum of that quarter and the three before it when all
    four are present and consecutive (else null); on an annual row, the annual value. Every
    value on a row is known by its ``available_at`` (earlier quarters were reported earlier).
    Output: ``CURATED_FUNDAMENTAL_COLUMNS`` sorted by ticker, period_end, period_type.
    """
    require_columns(
        raw_fundamentals,
        ("ticker", "period_end", "period_type", "item", "value", "report_date", "ingested_at"),
        "curate_fundamentals",
    )
    if quarter_lag_days < 0 or annual_lag_days < 0:
        raise ValueError("curate_fundamentals: lags must be >= 0 days")
    bad = raw_fundamentals.filter(~pl.col("period_type").is_in(PERIOD_TYPES))
    if bad.height:
        raise ValueError(
            f"curate_fundamentals: period_type must be one of {PERIOD_TYPES}; "
            f"got {bad['period_type'].unique().to_list()} in {bad.height} rows, e.g.\n{bad.head(5)}"
        )
    period = ["ticker", "period_end", "period_type"]
    items = _unsigned(
        latest_rows(
            raw_fundamentals.filter(pl.col("item").is_in(FUNDAMENTAL_ITEMS)), [*period, "item"]
        )
    )
    impossible = pl.col("item").is_in(_NON_NEGATIVE_ITEMS) & (pl.col("value") < 0)
    dropped = items.filter(impossible)
    if dropped.height:
        log.warning(
            "curate_fundamentals: %d negative %s values set to null, e.g. %s",
            dropped.height,
            sorted(dropped["item"].unique().to_list()),
            dropped.select(*period, "value").head(5).rows(),
        )
        items = items.filter(~impossible)
    wide = items.group_by(period).agg(
        pl.col("report_date").max(),
        pl.col("ingested_at").max(),
        *(
            pl.col("value").filter(pl.col("item") == item).first().cast(pl.Float64).alias(item)
            for item in FUNDAMENTAL_ITEMS
        ),
    )
    return _with_ttm(_with_available_at(wide, quarter_lag_days, annual_lag_days)).sort(period)


def _with_available_at(
    wide: pl.DataFrame, quarter_lag_days: int, annual_lag_days: int
) -> pl.DataFrame:
    """``available_at`` = report_date when known, else period_end + the period type's lag."""
    lag = (
        pl.when(pl.col("period_type") == "Q")
        .then(pl.duration(days=quarter_lag_days))
        .otherwise(pl.duration(days=annual_lag_days))
    )
    return wide.with_columns(
        available_at=pl.coalesce("report_date", (pl.col("period_end") + lag).cast(pl.Date))
    )


def _with_ttm(wide: pl.DataFrame) -> pl.DataFrame:
    """Add ``<item>_ttm`` to wide period rows and select ``CURATED_FUNDAMENTAL_COLUMNS``.

    Quarterly rows: the sum of the quarter and the three before it when all four are present and
    consecutive (else null); annual rows: the annual value. Extra columns of ``wide`` are dropped.
    """
    quarters = wide.filter(pl.col("period_type") == "Q").sort(["ticker", "period_end"])
    gap = (pl.col("period_end") - pl.col("period_end").shift(1)).dt.total_days()
    quarters = quarters.with_columns(
        _consecutive=gap.is_between(*_QUARTER_GAP_DAYS).fill_null(False).over("ticker")
    ).with_columns(
        _four=(
            pl.col("_consecutive")
            & pl.col("_consecutive").shift(1).fill_null(False)
            & pl.col("_consecutive").shift(2).fill_null(False)
        ).over("ticker")
    )
    quarters = quarters.with_columns(
        pl.when(pl.col("_four"))
        .then(
            (
                pl.col(item) + pl.col(item).shift(1) + pl.col(item).shift(2) + pl.col(item).shift(3)
            ).over("ticker")
        )
        .alias(f"{item}_ttm")
        for item in FLOW_ITEMS
    ).drop("_consecutive", "_four")
    annual = wide.filter(pl.col("period_type") == "A").with_columns(
        pl.col(item).alias(f"{item}_ttm") for item in FLOW_ITEMS
    )
    return pl.concat([quarters, annual], how="diagonal_relaxed").select(CURATED_FUNDAMENTAL_COLUMNS)


def fundamentals_as_of(
    raw_fundamentals: pl.DataFrame,
    as_of: datetime,
    quarter_lag_days: int = 45,
    annual_lag_days: int = 90,
) -> pl.DataFrame:
    """:func:`curate_fundamentals` over only the vintages ingested at or before ``as_of``.

    What the warehouse knew at ``as_of`` (a naive datetime is read as UTC): restatements
    ingested later are invisible. Same input and output frames as :func:`curate_fundamentals`.
    """
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    known = raw_fundamentals.filter(pl.col("ingested_at") <= as_of)
    return curate_fundamentals(known, quarter_lag_days, annual_lag_days)


VINTAGE_POINT_IN_TIME = "point_in_time"
VINTAGE_FIRST_INGESTED = "first_ingested"
FUNDAMENTAL_VINTAGE_COLUMNS: tuple[str, ...] = (
    "ticker",
    "period_end",
    "period_type",
    "vintage_at",
    "report_date",
    "available_at",
    "ingested_at",
    *FUNDAMENTAL_ITEMS,
)


def fundamentals_vintages(
    raw_fundamentals: pl.DataFrame, quarter_lag_days: int = 45, annual_lag_days: int = 90
) -> pl.DataFrame:
    """Every ingested version of every period: the ``curated.fundamentals_vintages`` table.

    ``raw_fundamentals``: raw.fundamentals rows (long, any number of vintages). One output row
    per (ticker, period_end, period_type, vintage_at), where ``vintage_at`` is each distinct
    ``ingested_at`` among the period's rows: the period as the warehouse knew it right after that
    ingestion (per item, the latest value ingested at or before ``vintage_at``; items not yet
    ingested are null). ``report_date`` and ``available_at`` are computed per version as in
    :func:`curate_fundamentals`, so a restatement with a later report date becomes available
    later. No TTM columns: those combine several periods and are computed per as-of view by
    :func:`fundamentals_known_at`. Output: ``FUNDAMENTAL_VINTAGE_COLUMNS`` sorted by ticker,
    period_end, period_type, vintage_at. A period ingested once has exactly one row.
    """
    require_columns(
        raw_fundamentals,
        ("ticker", "period_end", "period_type", "item", "value", "report_date", "ingested_at"),
        "fundamentals_vintages",
    )
    if quarter_lag_days < 0 or annual_lag_days < 0:
        raise ValueError("fundamentals_vintages: lags must be >= 0 days")
    period = ["ticker", "period_end", "period_type"]
    rows = _unsigned(
        raw_fundamentals.filter(pl.col("item").is_in(FUNDAMENTAL_ITEMS)).select(
            *period, "item", "value", "report_date", "ingested_at"
        )
    )
    bad = rows.filter(~pl.col("period_type").is_in(PERIOD_TYPES) | pl.col("ingested_at").is_null())
    if bad.height:
        raise ValueError(
            f"fundamentals_vintages: {bad.height} rows have a period_type outside "
            f"{PERIOD_TYPES} or a null ingested_at, e.g.\n{bad.head(5)}"
        )
    versions = rows.select(*period, pl.col("ingested_at").alias("vintage_at")).unique()
    known = (
        rows.join(versions, on=period)
        .filter(pl.col("ingested_at") <= pl.col("vintage_at"))
        .sort([*period, "vintage_at", "item", "ingested_at"])
        .unique(subset=[*period, "vintage_at", "item"], keep="last")
    )
    wide = known.group_by([*period, "vintage_at"]).agg(
        pl.col("report_date").max(),
        pl.col("ingested_at").max(),
        *(
            pl.col("value").filter(pl.col("item") == item).first().cast(pl.Float64).alias(item)
            for item in FUNDAMENTAL_ITEMS
        ),
    )
    return (
        _with_available_at(wide, quarter_lag_days, annual_lag_days)
        .select(FUNDAMENTAL_VINTAGE_COLUMNS)
        .sort([*period, "vintage_at"])
    )


def known_cutoff(as_of: date) -> datetime:
    """The instant before which a vintage counts as known on rebalance date ``as_of``.

    Midnight UTC at the start of ``as_of``: a rebalance on D sees prices up to D-1, so it sees
    the vintages ingested before D began, no later.
    """
    return datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC)


def fundamentals_known_at(
    vintages: pl.DataFrame, as_of: date, available_before: date | None = None
) -> pl.DataFrame:
    """curated.fundamentals as a rebalance on ``as_of`` knows them (restatements respected).

    ``vintages``: :func:`fundamentals_vintages` rows. Per (ticker, period_end, period_type) the
    version with the latest ``vintage_at`` at or before :func:`known_cutoff` (``as_of``) is used
    and labelled ``vintage = 'point_in_time'``. When no version of the period had been ingested
    by then (history loaded later than the date it describes) the EARLIEST version is used and
    labelled ``'first_ingested'``: the first numbers the warehouse saw, not necessarily the ones
    published at the time. With ``available_before``, rows with ``available_at >=
    available_before`` are dropped before TTM values are summed (the audit's truncation).

    Output: ``CURATED_FUNDAMENTAL_COLUMNS`` (TTM summed over the selected versions) plus
    ``vintage`` and ``vintage_at``, sorted by ticker, period_end, period_type.
    """
    require_columns(vintages, FUNDAMENTAL_VINTAGE_COLUMNS, "fundamentals_known_at")
    period = ["ticker", "period_end", "period_type"]
    cutoff = known_cutoff(as_of)
    known = pl.col("vintage_at") <= cutoff
    chosen = (
        vintages.with_columns(_known=known)
        # Per period: the latest known version if any, else the earliest version.
        .sort([*period, "_known", "vintage_at"], descending=[False, False, False, True, True])
        .with_columns(
            _pick=pl.when(pl.col("_known"))
            .then(pl.col("vintage_at"))
            .otherwise(pl.col("vintage_at").min().over(period))
        )
        .unique(subset=period, keep="first")
    )
    picked = vintages.join(
        chosen.select(*period, pl.col("_pick").alias("vintage_at")),
        on=[*period, "vintage_at"],
    ).with_columns(
        vintage=pl.when(known)
        .then(pl.lit(VINTAGE_POINT_IN_TIME))
        .otherwise(pl.lit(VINTAGE_FIRST_INGESTED))
    )
    if available_before is not None:
        picked = picked.filter(pl.col("available_at") < available_before)
    labels = picked.select(*period, "vintage", "vintage_at")
    return _with_ttm(picked).join(labels, on=period, how="left").sort(period)


# --------------------------------------------------------------------------------------------
# Securities, membership, actions


# Listing venues under one name whatever code the source uses: Yahoo says NMS/NGM/NCM (Nasdaq's
# three tiers) and NYQ, a vendor export XNAS/XNYS (ISO 10383 MICs) or the full name. Strategy
# files and screens name the canonical ones (docs/data_sources.md "Exchanges").
EXCHANGE_ALIASES: dict[str, tuple[str, ...]] = {
    "NASDAQ": ("NASDAQ", "NMS", "NGM", "NCM", "NAS", "NASDAQGS", "NASDAQGM", "NASDAQCM", "XNAS"),
    "NYSE": ("NYSE", "NYQ", "NYS", "XNYS", "NEW YORK STOCK EXCHANGE"),
    "NYSE American": ("NYSE AMERICAN", "NYSEAMERICAN", "NYSE MKT", "AMEX", "ASE", "XASE"),
    "NYSE Arca": ("NYSE ARCA", "NYSEARCA", "PCX", "ARCX"),
    "Cboe BZX": ("CBOE BZX", "BZX", "BATS", "BTS"),
}
_EXCHANGE_CODES = {code: name for name, codes in EXCHANGE_ALIASES.items() for code in codes}


def canonical_exchange(column: str = "exchange") -> pl.Expr:
    """The canonical name of each listing venue (:data:`EXCHANGE_ALIASES`, matched ignoring case
    and surrounding spaces); a value it does not know is kept as given, an empty one is null."""
    raw = pl.col(column).str.strip_chars()
    key = raw.str.to_uppercase()
    return (
        pl.when(raw == "")
        .then(None)
        .otherwise(key.replace_strict(_EXCHANGE_CODES, default=raw, return_dtype=pl.String))
        .alias(column)
    )


def curate_securities(raw_securities: pl.DataFrame) -> pl.DataFrame:
    """Latest profile per ticker (latest ``ingested_at`` over all sources), plus
    ``first_shares_outstanding``: the shares of the earliest ingested profile that has them.

    ``raw_securities``: raw.securities rows. Output: ``CURATED_SECURITY_COLUMNS`` and
    ``first_shares_outstanding`` by ticker, the exchange under its canonical name
    (:func:`canonical_exchange`: Yahoo's NMS is NASDAQ). Historical market caps that fall back on
    a profile use the first one (the closest to their dates on file, and one a refresh never
    moves); the latest serves today's decisions.
    """
    require_columns(raw_securities, CURATED_SECURITY_COLUMNS, "curate_securities")
    first = (
        raw_securities.filter(pl.col("shares_outstanding").is_not_null())
        .sort("ticker", "ingested_at", maintain_order=True)
        .group_by("ticker", maintain_order=True)
        .agg(pl.col("shares_outstanding").first().alias(FIRST_SHARES))
    )
    return (
        latest_rows(raw_securities, ["ticker"])
        .select(CURATED_SECURITY_COLUMNS)
        .with_columns(canonical_exchange())
        .join(first, on="ticker", how="left", maintain_order="left")
    )


def curate_membership(raw_membership: pl.DataFrame) -> pl.DataFrame:
    """Universe membership intervals, one row per (universe, ticker, start_date).

    ``raw_membership``: raw.membership rows; when several sources or fetches give the same
    interval start, the latest ``ingested_at`` wins. ``end_date`` null means still a member.
    Output: ``CURATED_MEMBERSHIP_COLUMNS`` sorted by universe, ticker, start_date.
    """
    key = ["universe", "ticker", "start_date"]
    require_columns(
        raw_membership, [*CURATED_MEMBERSHIP_COLUMNS, "ingested_at"], "curate_membership"
    )
    return latest_rows(raw_membership, key).select(CURATED_MEMBERSHIP_COLUMNS).sort(key)


def curate_actions(raw_actions: pl.DataFrame) -> pl.DataFrame:
    """Corporate actions, one row per (ticker, date, action), latest ``ingested_at`` wins.

    ``raw_actions``: raw.corporate_actions rows. Unknown action types raise; rows whose value is
    null, non-finite or not positive cannot adjust anything and are dropped with a warning.
    Output: ``CURATED_ACTION_COLUMNS`` sorted by ticker, date, action.
    """
    key = ["ticker", "date", "action"]
    require_columns(raw_actions, [*CURATED_ACTION_COLUMNS, "ingested_at"], "curate_actions")
    unknown = raw_actions.filter(~pl.col("action").is_in(ACTION_TYPES))
    if unknown.height:
        raise ValueError(
            f"curate_actions: unknown action types {unknown['action'].unique().to_list()} "
            f"(expected {ACTION_TYPES}), e.g.\n{unknown.head(5)}"
        )
    latest = latest_rows(raw_actions, key)
    usable = pl.col("value").is_finite().fill_null(False) & (pl.col("value") > 0).fill_null(False)
    dropped = latest.filter(~usable)
    if dropped.height:
        log.warning(
            "curate_actions: dropped %d actions with a null, non-finite or non-positive value:\n%s",
            dropped.height,
            dropped.head(5),
        )
    return latest.filter(usable).select(CURATED_ACTION_COLUMNS).sort(key)

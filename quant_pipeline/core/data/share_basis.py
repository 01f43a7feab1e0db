"""One share basis: share counts put on the basis of the prices they are multiplied with.

A split (or a share dividend) multiplies the number of shares and divides the price. Market cap =
price x shares is only right when both are on the same basis. Sources differ in which basis they
give:

* ``as_traded`` prices (the raw contract: demo, yahoo ``close``) fall on the split date; a share
  count reported before the split must be multiplied by the ratio once the price it is combined
  with is dated on or after the split;
* ``split_adjusted`` prices (the S&P 500 files: every price restated on today's basis) never fall;
  a share count reported before the split must be multiplied by the ratio whatever the price date.

This module finds the splits (``curated.share_basis_events``) and gives the multiplier of each
share count. Splits come from the source's corporate actions when it has them (``split`` and
``stock_dividend`` rows), otherwise they are inferred from the share series: consecutive periods of
a ticker whose shares jump by a near-integer ratio while its per-share items (revenue and total
assets per share) move inversely, so the company did not grow by that much. The price basis of
each split is read from the close: a one-day move of about ``1 / ratio`` at the split (within
:data:`PRICE_JUMP_TOLERANCE`) means as traded, none means split-adjusted.

Pure polars. The events look at the whole history (a split restates the past, like
``adjusted_close``); :func:`share_multiplier` applies an as-traded split only to prices dated on
or after it, so a rebalance never uses a split before it happened on that basis.
"""

from __future__ import annotations

import math

import polars as pl

from quant_pipeline.core.data.frames import require_columns

SHARE_BASIS_TABLE = "curated.share_basis_events"
METHOD_CORPORATE_ACTION = "corporate_action"
METHOD_INFERRED = "inferred"
AS_TRADED = "as_traded"
SPLIT_ADJUSTED = "split_adjusted"

# Shares may drift by buybacks and issuance between two reports: a ratio within 12% of an
# integer >= 2 (AAPL FY2013 -> FY2014 in the S&P files: x6.58 for a 7:1 split) counts as one.
RATIO_TOLERANCE = 0.12
# Per-share items after / before, times the ratio, must lie within [1/1.6, 1.6]: the company's
# revenue and assets moved by far less than its share count (a merger moves both).
PER_SHARE_TOLERANCE = 1.6
# A close falling to 1/ratio of the day before within 30% marks an as-traded split.
PRICE_JUMP_TOLERANCE = 1.3
PER_SHARE_ITEMS: tuple[str, ...] = ("revenue", "total_assets")
# A jump that the neighbouring step undoes by more than a third of its size (in logs) is a blip
# in the vendor's count (the S&P files' AAL 2012-2014: 335M, 163M, 717M), not a split.
REVERSAL_SHARE = 1.0 / 3.0

SHARE_BASIS_EVENTS_SCHEMA: dict[str, pl.DataType] = {
    "ticker": pl.String(),
    "date": pl.Date(),
    "period_before": pl.Date(),
    "period_after": pl.Date(),
    "ratio": pl.Float64(),
    "method": pl.String(),
    "price_basis": pl.String(),
    "evidence": pl.String(),
}


def _close_jumps(prices: pl.DataFrame, tickers: pl.Series) -> pl.DataFrame:
    """``ticker, date, jump``: close / previous close of the ticker (null on its first row),
    for ``tickers`` only (the few with a split: a jump depends on its own ticker's rows alone,
    and sorting every price row cost ~2 s at 3,000 tickers)."""
    require_columns(prices, ("ticker", "date", "close"), "curated.prices")
    return (
        prices.select("ticker", "date", "close")
        .filter(pl.col("ticker").is_in(tickers.unique().implode()))
        .sort("ticker", "date")
        .with_columns(jump=pl.col("close") / pl.col("close").shift(1).over("ticker"))
        .select("ticker", "date", "jump")
    )


def _shares_rows(fundamentals: pl.DataFrame) -> pl.DataFrame:
    cols = ("ticker", "period_end", "period_type", "available_at", "shares_outstanding")
    require_columns(fundamentals, (*cols, *PER_SHARE_ITEMS), "curated.fundamentals")
    return (
        fundamentals.select(*cols, *PER_SHARE_ITEMS)
        .filter(pl.col("shares_outstanding") > 0)
        .with_columns(pl.col("available_at").cast(pl.Date))
    )


def _jump_fits(ratio: pl.Expr) -> pl.Expr:
    """The close jump of the row is ~ 1 / ratio (the split shows in as-traded prices)."""
    return (pl.col("jump") * ratio).log().abs() <= math.log(PRICE_JUMP_TOLERANCE)


def corporate_action_splits(
    actions: pl.DataFrame, prices: pl.DataFrame, fundamentals: pl.DataFrame
) -> pl.DataFrame:
    """Share-basis events from the source's corporate actions (``SHARE_BASIS_EVENTS_SCHEMA``).

    ``actions``: curated corporate actions (ticker, date, action, value): a ``split`` of value r
    is ratio r, a ``stock_dividend`` of v new shares per share is ratio 1 + v; other actions do
    not change the share count. ``prices``: curated.prices (ticker, date, close).
    ``fundamentals``: curated.fundamentals (ticker, period_end, period_type, available_at,
    shares_outstanding, revenue, total_assets). ``period_before`` / ``period_after``: the last
    period end before the split date and the first on or after it with shares. ``price_basis``:
    ``as_traded`` when the close on the split's first trading row is ~1/ratio of the row before,
    or when no such pair of rows exists; ``split_adjusted`` otherwise.
    """
    require_columns(actions, ("ticker", "date", "action", "value"), "curated.corporate_actions")
    splits = actions.filter(pl.col("action").is_in(["split", "stock_dividend"])).select(
        "ticker",
        pl.col("date").cast(pl.Date),
        "action",
        ratio=pl.when(pl.col("action") == "split")
        .then(pl.col("value"))
        .otherwise(1.0 + pl.col("value"))
        .cast(pl.Float64),
    )
    if splits.is_empty():
        return pl.DataFrame(schema=SHARE_BASIS_EVENTS_SCHEMA)
    shares = _shares_rows(fundamentals).select("ticker", "period_end", "shares_outstanding")
    jumps = _close_jumps(prices, splits["ticker"]).rename({"date": "_row_date"}).sort("_row_date")
    sorted_splits = splits.sort("date")
    landed = sorted_splits.join_asof(
        jumps,
        left_on="date",
        right_on="_row_date",
        by="ticker",
        strategy="forward",
        check_sortedness=False,
    )
    before = sorted_splits.join_asof(
        shares.rename({"period_end": "period_before", "shares_outstanding": "_s0"})
        .with_columns(_key=pl.col("period_before"))
        .sort("_key"),
        left_on="date",
        right_on="_key",
        by="ticker",
        allow_exact_matches=False,
        check_sortedness=False,
    ).select("ticker", "date", "action", "period_before", "_s0")
    after = sorted_splits.join_asof(
        shares.rename({"period_end": "period_after", "shares_outstanding": "_s1"})
        .with_columns(_key=pl.col("period_after"))
        .sort("_key"),
        left_on="date",
        right_on="_key",
        by="ticker",
        strategy="forward",
        check_sortedness=False,
    ).select("ticker", "date", "action", "period_after", "_s1")
    events = landed.join(before, on=["ticker", "date", "action"], how="left").join(
        after, on=["ticker", "date", "action"], how="left"
    )
    basis = pl.when(pl.col("jump").is_null() | _jump_fits(pl.col("ratio")))
    events = events.with_columns(
        price_basis=basis.then(pl.lit(AS_TRADED)).otherwise(pl.lit(SPLIT_ADJUSTED)),
        evidence=pl.format(
            "{} {} on file; shares {} -> {}: x{}; close on the split's first row x{}",
            pl.col("action"),
            pl.col("ratio").round(4),
            *(
                e.cast(pl.String).fill_null("none")
                for e in (
                    pl.col("period_before"),
                    pl.col("period_after"),
                    (pl.col("_s1") / pl.col("_s0")).round(3),
                    pl.col("jump").round(4),
                )
            ),
        ),
        method=pl.lit(METHOD_CORPORATE_ACTION),
    )
    return _as_events(events)


def _as_events(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select([pl.col(c).cast(t) for c, t in SHARE_BASIS_EVENTS_SCHEMA.items()]).sort(
        "ticker", "period_before", "date", nulls_last=True
    )


def _split_candidates(fundamentals: pl.DataFrame) -> pl.DataFrame:
    """Consecutive periods (same ticker and period type) whose shares jump by a near-integer
    ratio while revenue and total assets per share move inversely."""
    rows = _shares_rows(fundamentals).sort("ticker", "period_type", "period_end")
    by = ["ticker", "period_type"]
    prev = {c: pl.col(c).shift(1).over(by) for c in ("period_end", "shares_outstanding")}
    pairs = rows.with_columns(
        period_before=prev["period_end"],
        _raw=pl.col("shares_outstanding") / prev["shares_outstanding"],
        **{f"_ps_{i}": pl.col(i) / pl.col(i).shift(1).over(by) for i in PER_SHARE_ITEMS},
    )
    step = pl.col("_raw").log()
    undone = pl.any_horizontal(
        (-neighbour.over(by) / step > REVERSAL_SHARE).fill_null(False)
        for neighbour in (step.shift(1), step.shift(-1))
    )
    pairs = pairs.with_columns(_undone=undone).filter(
        pl.col("_raw").is_not_null() & ~pl.col("_undone")
    )
    up = pl.col("_raw") >= 1.0
    whole = pl.when(up).then(pl.col("_raw")).otherwise(1.0 / pl.col("_raw")).round(0)
    pairs = pairs.with_columns(
        ratio=pl.when(up).then(whole).otherwise(1.0 / whole),
        _near=(pl.when(up).then(pl.col("_raw")).otherwise(1.0 / pl.col("_raw")) / whole - 1.0).abs()
        <= RATIO_TOLERANCE,
        _whole=whole,
    )
    # item growth / share growth = per-share ratio; times the split ratio it is ~1 for a split.
    inverse = [
        (pl.col(f"_ps_{i}") / pl.col("_raw") * pl.col("ratio")).log().abs() for i in PER_SHARE_ITEMS
    ]
    fits = pl.all_horizontal((e <= math.log(PER_SHARE_TOLERANCE)).fill_null(True) for e in inverse)
    any_item = pl.any_horizontal(pl.col(f"_ps_{i}").is_not_null() for i in PER_SHARE_ITEMS)
    return pairs.filter((pl.col("_whole") >= 2) & pl.col("_near") & fits & any_item).rename(
        {"period_end": "period_after"}
    )


def inferred_splits(
    fundamentals: pl.DataFrame, prices: pl.DataFrame, known: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Splits inferred from the share series (``SHARE_BASIS_EVENTS_SCHEMA``, method inferred).

    ``fundamentals`` and ``prices`` as in :func:`corporate_action_splits`; ``known``: events on
    file (a candidate whose window holds a known split of the ticker is dropped). A candidate is a
    pair of consecutive periods of one ticker and period type with shares ``s0 -> s1`` where
    ``max(s1/s0, s0/s1)`` is within ``RATIO_TOLERANCE`` of an integer k >= 2 (ratio k, or 1/k for
    a reverse split) and, for each of revenue and total assets present on both rows, (item
    growth / share growth) x ratio lies within [1/1.6, 1.6], and neither neighbouring step of
    the series undoes more than a third of the jump (in logs: a blip, not a split). An annual
    candidate whose window holds a quarterly one of the ticker is the same split seen coarser,
    and is dropped. The split
    date is the day in (period_before, available_at of period_after] whose close jump is nearest
    to 1/ratio when it fits within ``PRICE_JUMP_TOLERANCE`` (``as_traded``); else it is unknown
    (null) and the prices are ``split_adjusted``.
    """
    candidates = _split_candidates(fundamentals)
    quarterly = candidates.filter(pl.col("period_type") == "Q").select(
        "ticker", pl.col("period_after").alias("_q_after")
    )
    inside = pl.col("_q_after").is_between(pl.col("period_before"), pl.col("period_after"))
    coarse = (
        candidates.filter(pl.col("period_type") == "A")
        .join(quarterly, on="ticker")
        .filter(inside)
        .select("ticker", "period_after", "period_type")
    )
    candidates = candidates.join(coarse, on=["ticker", "period_after", "period_type"], how="anti")
    if known is not None and known.height:
        on_file = known.select("ticker", pl.col("date").alias("_known"))
        explained = (
            candidates.join(on_file, on="ticker")
            .filter(pl.col("_known").is_between(pl.col("period_before"), pl.col("available_at")))
            .select("ticker", "period_after", "period_type")
        )
        candidates = candidates.join(
            explained, on=["ticker", "period_after", "period_type"], how="anti"
        )
    if candidates.is_empty():
        return pl.DataFrame(schema=SHARE_BASIS_EVENTS_SCHEMA)
    return _as_events(_dated(candidates, _close_jumps(prices, candidates["ticker"])))


def _dated(candidates: pl.DataFrame, jumps: pl.DataFrame) -> pl.DataFrame:
    """Attach the split date and price basis (see :func:`inferred_splits`) and the evidence."""
    window = pl.col("date") > pl.col("period_before")
    window = window & (pl.col("date") <= pl.col("available_at"))
    best = (
        candidates.select(
            "ticker", "period_after", "period_type", "ratio", "period_before", "available_at"
        )
        .join(jumps.drop_nulls("jump"), on="ticker")
        .filter(window & _jump_fits(pl.col("ratio")))
        .with_columns(_miss=(pl.col("jump") * pl.col("ratio")).log().abs())
        .sort("_miss")
        .unique(subset=["ticker", "period_after", "period_type"], keep="first")
        .select("ticker", "period_after", "period_type", "date", "jump")
    )
    per_share = [
        pl.format(f"{item}/share x{{}}", (pl.col(f"_ps_{item}") / pl.col("_raw")).round(4))
        for item in PER_SHARE_ITEMS
    ]
    return (
        candidates.join(best, on=["ticker", "period_after", "period_type"], how="left")
        .with_columns(
            method=pl.lit(METHOD_INFERRED),
            price_basis=pl.when(pl.col("date").is_not_null())
            .then(pl.lit(AS_TRADED))
            .otherwise(pl.lit(SPLIT_ADJUSTED)),
        )
        .with_columns(
            evidence=pl.concat_str(
                [
                    pl.format(
                        "{} shares {} -> {} ({}): x{}",
                        pl.col("period_type"),
                        pl.col("period_before"),
                        pl.col("period_after"),
                        pl.col("shares_outstanding").round(0),
                        pl.col("_raw").round(4),
                    ),
                    *per_share,
                    pl.when(pl.col("date").is_null())
                    .then(pl.lit("no close jump near 1/ratio: prices split-adjusted"))
                    .otherwise(pl.format("close jump x{} on {}", pl.col("jump").round(4), "date")),
                ],
                separator="; ",
                ignore_nulls=True,
            )
        )
    )


def share_basis_events(
    actions: pl.DataFrame | None, prices: pl.DataFrame, fundamentals: pl.DataFrame
) -> pl.DataFrame:
    """The ``curated.share_basis_events`` table: splits on file, then those inferred.

    ``actions``: curated corporate actions or None; ``prices``: curated.prices (ticker, date,
    close); ``fundamentals``: curated.fundamentals. See :func:`corporate_action_splits` and
    :func:`inferred_splits`. Sorted by ticker, period_before, date.
    """
    on_file = (
        corporate_action_splits(actions, prices, fundamentals)
        if actions is not None and actions.height
        else pl.DataFrame(schema=SHARE_BASIS_EVENTS_SCHEMA)
    )
    inferred = inferred_splits(fundamentals, prices, on_file)
    return _as_events(pl.concat([on_file, inferred], how="vertical"))


def share_multiplier(
    rows: pl.DataFrame, events: pl.DataFrame, *, period: str, price_date: str
) -> pl.Series:
    """The factor that puts each row's share count on the basis of its price, ``rows`` order.

    ``rows``: ticker, ``period`` (the period end the shares were reported for; null = a profile
    count, left as it is) and ``price_date`` (the date of the price they are multiplied with).
    ``events``: :func:`share_basis_events`. Product of the ratios of the ticker's events with
    ``period <= period_before`` and either ``price_basis = split_adjusted`` or ``date <=
    price_date``; 1.0 when none applies. Float64 named ``share_multiplier``.
    """
    require_columns(rows, ("ticker", period, price_date), "share_multiplier rows")
    require_columns(events, tuple(SHARE_BASIS_EVENTS_SCHEMA), "curated.share_basis_events")
    indexed = rows.select("ticker", period, price_date).with_row_index("_row")
    if events.is_empty() or rows.is_empty():
        return pl.Series("share_multiplier", [1.0] * rows.height, dtype=pl.Float64)
    applies = (pl.col(period) <= pl.col("period_before")) & (
        (pl.col("price_basis") == SPLIT_ADJUSTED) | (pl.col("date") <= pl.col(price_date))
    )
    factors = (
        indexed.join(
            events.select("ticker", "period_before", "date", "price_basis", "ratio"), on="ticker"
        )
        .filter(applies.fill_null(False))
        .group_by("_row")
        .agg(pl.col("ratio").product().alias("share_multiplier"))
    )
    ones = pl.Series("share_multiplier", [1.0] * rows.height, dtype=pl.Float64)
    if factors.is_empty():
        return ones
    return ones.scatter(factors["_row"], factors["share_multiplier"])


def split_index(rows: pl.DataFrame, events: pl.DataFrame | None) -> pl.Series:
    """Per row (ticker, date): the product of the ticker's ``as_traded`` split ratios dated on or
    before ``date`` (1.0 when none), in ``rows`` order, Float64 named ``split_index``.

    A quantity counted in shares on day s is on day t's basis after multiplying by
    ``split_index(t) / split_index(s)``: daily volumes in an as-traded source are re-based this
    way before they are averaged over a window that holds a split. Split-adjusted prices carry
    split-adjusted volumes and need nothing (their events do not count here).
    """
    require_columns(rows, ("ticker", "date"), "split_index rows")
    ones = pl.Series("split_index", [1.0] * rows.height, dtype=pl.Float64)
    if events is None or events.is_empty():
        return ones
    traded = events.filter(pl.col("price_basis") == AS_TRADED).select("ticker", "date", "ratio")
    if traded.is_empty():
        return ones
    indexed = rows.select("ticker", "date").with_row_index("_row")
    indexed = indexed.filter(pl.col("ticker").is_in(traded["ticker"].unique().implode()))
    factors = (
        indexed.join(traded.rename({"date": "_split"}), on="ticker")
        .filter(pl.col("_split") <= pl.col("date"))
        .group_by("_row")
        .agg(pl.col("ratio").product().alias("_k"))
    )
    if factors.is_empty():
        return ones
    return ones.scatter(factors["_row"], factors["_k"])

"""Bias labels: how a backtest was made, so nobody mistakes a biased number for a clean one.

One row per (strategy, label) with a short text value; the ``backtest.labels`` table and the
README section "Bias labels" explain each value. Pure polars over frames the backtest already has.

Labels (values in ``code`` font are fixed words, the rest are explanations):

* ``source`` — the data source (``demo``, ``files``, ``yahoo``).
* ``universe`` — ``membership:<name>`` (point-in-time membership intervals, membership on each
  rebalance date) or ``listed`` (no membership: whatever traded in the days before D).
* ``survivorship_free`` — ``yes`` / ``no``, then why: with membership, whether every member on
  the rebalance dates has prices (companies that left and are missing from the price history make
  it ``no``); without membership, whether the price history holds tickers whose prices stop
  (delisted companies kept) or only today's listing.
* ``universe_price_coverage`` — mean over rebalance dates of (members with a price before D) /
  (members on D); ``n/a`` without membership.
* ``fundamentals_timing`` — ``report_dates`` (every row has its real report date),
  ``assumed_lag`` (none has: period end + lag, the lags in days listed), or ``mixed``.
* ``data_vintage`` — ``point_in_time`` (each rebalance used the versions ingested before it),
  ``first_ingested`` (history loaded after the fact: the first versions the warehouse saw stand
  in; restatements after loading are ignored, not those before it), ``mixed`` or ``none``.
* ``market_cap_shares`` — ``reported`` (shares from the fundamentals known at D) or the share of
  rows whose market cap used today's profile shares (a lookahead).
* ``delisting`` — ``last_price`` (a delisted holding is closed at its last price) or the
  configured delisting return applied to that price.
* ``costs_bps`` — the transaction cost charged per unit traded, in basis points.

Two more labels come from :func:`data_labels` (one row each per strategy, appended by the
backtest asset):

* ``share_basis`` — ``none`` (no split found) or ``rebased``: how many splits put share counts on
  the basis of the prices, by method (``corporate_action`` / ``inferred``) and price basis.
* ``suspect_moves`` — how many one-day moves beyond the threshold have no corporate action on
  file, and how many of them the strategy held (``0 held`` or the count and first tickers).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import polars as pl

LABELS_SCHEMA: dict[str, pl.DataType] = {
    "strategy": pl.String(),
    "label": pl.String(),
    "value": pl.String(),
}
LABEL_NAMES: tuple[str, ...] = (
    "source",
    "universe",
    "survivorship_free",
    "universe_price_coverage",
    "fundamentals_timing",
    "data_vintage",
    "market_cap_shares",
    "delisting",
    "costs_bps",
)
FULL_COVERAGE = 0.999  # below this share of members priced, the universe is not survivorship-free


def members_per_date(membership: pl.DataFrame, dates: Iterable[date]) -> pl.DataFrame:
    """``rebalance_date, members``: distinct tickers with an interval containing each date.

    ``membership``: curated.membership (ticker, start_date, end_date; both ends inclusive, null
    end = still a member) of one universe.
    """
    frame = pl.DataFrame({"rebalance_date": sorted(set(dates))}, schema={"rebalance_date": pl.Date})
    inside = (
        frame.join(membership.select("ticker", "start_date", "end_date"), how="cross")
        .filter(
            (pl.col("start_date") <= pl.col("rebalance_date"))
            & (pl.col("end_date").is_null() | (pl.col("end_date") >= pl.col("rebalance_date")))
        )
        .group_by("rebalance_date")
        .agg(pl.col("ticker").n_unique().alias("members"))
    )
    return (
        frame.join(inside, on="rebalance_date", how="left")
        .with_columns(pl.col("members").fill_null(0).cast(pl.Int64))
        .sort("rebalance_date")
    )


def _timing(fundamentals: pl.DataFrame) -> str:
    if fundamentals.is_empty():
        return "none: no fundamentals"
    reported = fundamentals["report_date"].is_not_null()
    share = float(reported.mean())  # type: ignore[arg-type]
    lagged = fundamentals.filter(pl.col("report_date").is_null())
    lags = (
        lagged.group_by("period_type")
        .agg((pl.col("available_at") - pl.col("period_end")).dt.total_days().mode().first())
        .sort("period_type")
    )
    lag_text = ", ".join(f"{p} +{d} days" for p, d in lags.iter_rows())
    if share == 1.0:
        return "report_dates: every period has its report date"
    if share == 0.0:
        return f"assumed_lag: available at period end {lag_text}"
    return f"mixed: report dates on {share:.1%} of periods, else period end {lag_text}"


def _vintage(report: pl.DataFrame) -> str:
    if report.is_empty():
        return "none: no fundamentals used"
    kinds = sorted(report["vintage"].unique().to_list())
    pit = int(report["rows_point_in_time"].sum())
    first = int(report["rows_first_ingested"].sum())
    word = kinds[0] if len(kinds) == 1 else "mixed"
    if word == "mixed" and set(kinds) <= {"point_in_time", "none"}:
        word = "point_in_time"
    if word == "mixed" and set(kinds) <= {"first_ingested", "none"}:
        word = "first_ingested"
    return f"{word}: {pit} row-dates point in time, {first} first-ingested"


def _membership_coverage(values: pl.DataFrame, membership: pl.DataFrame) -> tuple[int, float]:
    """(member-dates without a price, mean share of members priced) over the dates of
    ``values`` on which the universe has members."""
    dates = values["rebalance_date"].unique().to_list()
    priced = values.group_by("rebalance_date").agg(
        pl.col("in_universe").sum().cast(pl.Int64).alias("priced")
    )
    coverage_frame = members_per_date(membership, dates).join(
        priced, on="rebalance_date", how="left"
    )
    coverage_frame = coverage_frame.filter(pl.col("members") > 0)
    missing = int((coverage_frame["members"] - coverage_frame["priced"].fill_null(0)).sum())
    coverage = (
        float((coverage_frame["priced"].fill_null(0) / coverage_frame["members"]).mean())
        if coverage_frame.height
        else 0.0
    )
    return missing, coverage


def _universe_and_survivorship(
    values: pl.DataFrame, membership: pl.DataFrame | None, delisted_tickers: int
) -> tuple[str, str, str]:
    """The ``universe``, ``survivorship_free`` and ``universe_price_coverage`` labels."""
    if membership is None or membership.height == 0:
        if delisted_tickers > 0:
            survivorship = (
                f"yes: no membership; the price history keeps {delisted_tickers} tickers "
                "whose prices stop (delisted companies included)"
            )
        else:
            survivorship = (
                "no: no membership and no ticker's prices stop: likely today's listing only"
            )
        return "listed", survivorship, "n/a"
    names = (
        sorted(membership["universe"].unique().to_list())
        if "universe" in membership.columns
        else []
    )
    universe = "membership:" + ",".join(names or ["?"])
    missing, coverage = _membership_coverage(values, membership)
    if coverage >= FULL_COVERAGE:
        survivorship = "yes: point-in-time membership and every member on D has prices"
    else:
        survivorship = (
            f"no: point-in-time membership, but {missing} member-dates lack prices "
            f"(mean coverage {coverage:.1%}): companies that left are missing from the "
            "price history"
        )
    return universe, survivorship, f"{coverage:.3f}"


def _market_cap_shares(values: pl.DataFrame) -> str:
    """The ``market_cap_shares`` label: how often today's profile stood in for reported shares."""
    from_profile = values["shares_from_profile"].fill_null(False)
    profile_share = float(from_profile.mean()) if values.height else 0.0  # type: ignore[arg-type]
    if profile_share == 0.0:
        return "reported: shares from fundamentals known at D"
    return f"profile on {profile_share:.1%} of rows: today's shares outstanding (lookahead)"


def _delisting(delisting_return: float | None) -> str:
    """The ``delisting`` label: what happens to a holding whose prices stop."""
    if delisting_return is None:
        return (
            "last_price: a delisted holding is closed at its last price, cash until next rebalance"
        )
    return f"delisting_return {delisting_return:+.4g} applied to the last price, then cash"


def share_basis_label(events: pl.DataFrame) -> str:
    """The ``share_basis`` label from curated.share_basis_events (method, price_basis)."""
    if events.is_empty():
        return "none: no split found on file or in the share series; shares as reported"
    counts = events.group_by("method", "price_basis").len().sort("method", "price_basis")
    parts = ", ".join(f"{n} {m} ({b})" for m, b, n in counts.iter_rows())
    tickers = events["ticker"].n_unique()
    return (
        f"rebased: {events.height} splits of {tickers} tickers put share counts on the prices' "
        f"basis: {parts}; see curated.share_basis_events"
    )


def suspect_moves_label(moves: pl.DataFrame, held: pl.DataFrame) -> str:
    """The ``suspect_moves`` label: moves on file (curated.suspect_moves) and those ``held``
    (rows of one strategy from :func:`core.data.suspect_moves.held_through`)."""
    if moves.is_empty():
        return "0: no one-day move beyond the threshold without a corporate action on file"
    threshold = float(moves["threshold"].max())  # type: ignore[arg-type]
    head = (
        f"{moves.height} one-day moves of {threshold:.0%} or more with no corporate action on "
        "file (curated.suspect_moves), taken as returns"
    )
    if held.is_empty():
        return f"{head}; 0 held"
    named = ", ".join(f"{t} {d}" for t, d in held.select("ticker", "date").head(3).iter_rows())
    more = f" and {held.height - 3} more" if held.height > 3 else ""
    return f"{head}; {held.height} held: {named}{more}"


def data_labels(
    strategies: Iterable[str],
    share_basis: pl.DataFrame,
    moves: pl.DataFrame,
    held: pl.DataFrame,
) -> pl.DataFrame:
    """``share_basis`` and ``suspect_moves`` label rows (``LABELS_SCHEMA``) for each strategy.

    ``share_basis``: curated.share_basis_events; ``moves``: curated.suspect_moves; ``held``:
    :func:`core.data.suspect_moves.held_through` over every strategy's trades.
    """
    rows = []
    basis = share_basis_label(share_basis)
    for name in strategies:
        own = held.filter(pl.col("strategy") == name)
        rows.append((name, "share_basis", basis))
        rows.append((name, "suspect_moves", suspect_moves_label(moves, own)))
    return pl.DataFrame(rows, schema=LABELS_SCHEMA, orient="row")


def bias_labels(
    strategy: str,
    *,
    source: str,
    cost_bps: float,
    delisting_return: float | None,
    values: pl.DataFrame,
    membership: pl.DataFrame | None,
    fundamentals: pl.DataFrame,
    vintage_report: pl.DataFrame,
    delisted_tickers: int,
) -> pl.DataFrame:
    """The labels of one strategy's backtest (``LABELS_SCHEMA``, one row per ``LABEL_NAMES``).

    ``values``: factors.values rows of the strategy's rebalance dates (rebalance_date, ticker,
    in_universe, shares_from_profile). ``membership``: curated.membership of the universe used
    (None or empty = none). ``fundamentals``: curated.fundamentals (period_type, period_end,
    report_date, available_at). ``vintage_report``: factors.fundamentals_vintage rows of the
    strategy's dates. ``delisted_tickers``: tickers of the price history whose prices stop before
    its last date.
    """
    universe, survivorship, coverage_text = _universe_and_survivorship(
        values, membership, delisted_tickers
    )
    rows = {
        "source": source,
        "universe": universe,
        "survivorship_free": survivorship,
        "universe_price_coverage": coverage_text,
        "fundamentals_timing": _timing(fundamentals),
        "data_vintage": _vintage(vintage_report),
        "market_cap_shares": _market_cap_shares(values),
        "delisting": _delisting(delisting_return),
        "costs_bps": f"{cost_bps:g}",
    }
    return pl.DataFrame(
        {
            "strategy": [strategy] * len(LABEL_NAMES),
            "label": list(LABEL_NAMES),
            "value": [rows[name] for name in LABEL_NAMES],
        },
        schema=LABELS_SCHEMA,
    )

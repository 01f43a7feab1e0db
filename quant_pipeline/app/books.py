"""The book a packet trades to: a strategy's latest target weights, the same strategy resized to
``stocks`` positions, or a theme scored on the latest ``factors.values`` rebalance.

Reads the warehouse read-only. A theme (``quant_pipeline/themes/``) is a factor strategy that
the pipeline does not run: it is scored here with the pipeline's own scoring and selection
(:func:`core.strategies.scoring.score`, :func:`core.strategies.target_weights.target_weights`)
on the latest ``factors.values`` rebalance date on or before the as-of date, so it uses the same
point-in-time values as every strategy. ``stocks`` resizes any strategy or theme
(:func:`core.strategies.sizing.with_stocks`): factor and staggered books are re-selected from the
strategy's ``factors.scores`` (staggered: its whole history, the tranches depend on it), signal
books re-run on ``curated.prices`` up to the as-of date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from quant_pipeline.config.strategies import load_strategies
from quant_pipeline.config.themes import load_theme
from quant_pipeline.core.accounts.changes import BOOK_COLUMNS
from quant_pipeline.core.accounts.orders import OrdersError
from quant_pipeline.core.data.schema import PRICE_COLUMNS
from quant_pipeline.core.strategies.scoring import eligibility_columns, score, with_country
from quant_pipeline.core.strategies.signal_weights import signal_weights
from quant_pipeline.core.strategies.sizing import with_stocks
from quant_pipeline.core.strategies.spec import StrategyConfigError, StrategySpec
from quant_pipeline.core.strategies.staggered import staggered_weights
from quant_pipeline.core.strategies.target_weights import target_weights
from quant_pipeline.storage.warehouse import Warehouse


@dataclass(frozen=True)
class Book:
    """What the orders trade to: ``label`` (strategy name or ``theme:<name>``), the rebalance
    date, weights (ticker, sector, weight, score, rank; weight-0 rows sell), the config hash."""

    label: str
    rebalance: date
    weights: pl.DataFrame
    config_hash: str | None
    theme: str | None = None
    stocks: int | None = None


def _latest(frame: pl.DataFrame, as_of: date, what: str) -> tuple[date, pl.DataFrame]:
    """The rows of the latest rebalance_date on or before ``as_of`` (BOOK_COLUMNS)."""
    frame = frame.filter(pl.col("rebalance_date") <= as_of)
    if frame.is_empty():
        raise OrdersError(f"{what} has no rebalance on or before {as_of}")
    day = frame["rebalance_date"].max()
    rows = frame.filter(pl.col("rebalance_date") == day)
    return day, rows.select(BOOK_COLUMNS).sort("ticker")  # type: ignore[return-value]


def strategy_book(
    warehouse: Warehouse, strategy: str, as_of: date, config_hash: str | None
) -> Book:
    """The strategy's latest portfolio.target_weights rebalance on or before ``as_of``."""
    weights = warehouse.read_table(
        "portfolio.target_weights",
        columns=["rebalance_date", *BOOK_COLUMNS],
        filters={"strategy": strategy},
    )
    day, rows = _latest(weights, as_of, f"strategy {strategy!r}")
    return Book(strategy, day, rows, config_hash)


def theme_book(warehouse: Warehouse, name: str, stocks: int | None, as_of: date) -> Book:
    """Theme ``name`` scored on the latest factors.values rebalance on or before ``as_of``."""
    try:
        spec = load_theme(name)
    except StrategyConfigError as exc:
        raise OrdersError(str(exc)) from None
    spec = spec if stocks is None else with_stocks(spec, stocks)
    if not warehouse.has_table("factors.values"):
        raise OrdersError(
            f"warehouse {warehouse.path} has no factors.values; materialize the pipeline first"
        )
    values = warehouse.read_table("factors.values").filter(pl.col("rebalance_date") <= as_of)
    if values.is_empty():
        raise OrdersError(f"factors.values has no rebalance on or before {as_of}")
    values = values.filter(pl.col("rebalance_date") == values["rebalance_date"].max())
    _require_theme_factors(values, spec)
    if "country" in eligibility_columns(spec):
        values = with_country(values, warehouse.read_table("curated.securities"))
    scores, _ = score(values, spec)
    weights, _ = target_weights(scores, spec)
    day, rows = _latest(weights, as_of, f"theme {name!r}")
    return Book(f"theme:{name}", day, rows, spec.config_hash, theme=name, stocks=stocks)


def _require_theme_factors(values: pl.DataFrame, spec: StrategySpec) -> None:
    """Refuse a theme whose factors the warehouse lacks (a column an older run did not compute,
    or a factor null for every ticker: the source has no such data) instead of trading nothing."""
    day = values["rebalance_date"].max()
    for factor in sorted(spec.scoring.factors):
        if factor not in values.columns:
            raise OrdersError(
                f"theme {spec.name!r} ranks by {factor}, a column factors.values does not have "
                "yet: run the pipeline again (quant-pipeline run) to compute it"
            )
        if values[factor].is_null().all():
            raise OrdersError(
                f"theme {spec.name!r} ranks by {factor}, which is unknown for all "
                f"{values.height} tickers on {day}: the source does not provide its inputs "
                f"(see the {factor} definition in docs/metrics.md and docs/data_sources.md)"
            )


def resized_book(warehouse: Warehouse, strategy: str, stocks: int, as_of: date) -> Book:
    """Strategy ``strategy`` rebuilt with ``stocks`` positions, latest rebalance <= ``as_of``."""
    try:
        spec = with_stocks(load_strategies(names=[strategy])[strategy], stocks)
    except StrategyConfigError as exc:
        raise OrdersError(
            f"cannot resize strategy {strategy!r} to {stocks} stocks: {exc}"
        ) from None
    except ValueError as exc:
        raise OrdersError(str(exc)) from None
    if spec.kind == "signal":
        weights = _signal_weights_until(warehouse, spec, as_of)
    else:
        scores = warehouse.read_table("factors.scores", filters={"strategy": strategy})
        scores = scores.filter(pl.col("rebalance_date") <= as_of)
        if spec.kind == "staggered":
            weights, _ = staggered_weights(scores, spec)
        else:
            last = scores.filter(pl.col("rebalance_date") == scores["rebalance_date"].max())
            weights, _ = target_weights(last, spec)
    day, rows = _latest(weights, as_of, f"strategy {strategy!r} with {stocks} stocks")
    return Book(strategy, day, rows, spec.config_hash, stocks=stocks)


def _signal_weights_until(warehouse: Warehouse, spec: StrategySpec, as_of: date) -> pl.DataFrame:
    """A signal strategy's target weights from the warehouse inputs up to ``as_of``."""
    prices = warehouse.read_table("curated.prices", columns=PRICE_COLUMNS)
    values = warehouse.read_table(
        "factors.values", columns=["rebalance_date", "ticker", "quarterly_earnings_growth"]
    )
    membership = warehouse.read_table("curated.membership")
    earnings = values if values["quarterly_earnings_growth"].is_not_null().any() else None
    weights, _ = signal_weights(
        prices.filter(pl.col("date") <= as_of),
        spec,
        membership=membership if membership.height else None,
        sectors=warehouse.read_table("curated.securities", columns=["ticker", "sector"]),
        fundamentals_values=earnings,
    )
    return weights

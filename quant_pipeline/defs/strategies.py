"""Which strategies a run computes: every shipped YAML file, or the ones named in settings
(plus the sleeves the named blends need), minus those the warehouse lacks the inputs for; and how
a run writes only the rows it owns."""

from collections.abc import Sequence

import polars as pl

from quant_pipeline.config.strategies import load_strategies
from quant_pipeline.core.backtest.comparison import BENCHMARK
from quant_pipeline.core.strategies.requirements import (
    ProfileCoverage,
    StrategyPlan,
    available_inputs,
    plan_strategies,
)
from quant_pipeline.core.strategies.spec import StrategySpec, with_blend_sleeves
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.storage.warehouse import Warehouse


def selected_strategies(market: MarketDataResource) -> dict[str, StrategySpec]:
    """The configured strategies, whatever data the warehouse holds."""
    names = market.settings().strategies
    available = load_strategies()
    if names is None:
        return available
    return with_blend_sleeves(load_strategies(names=names), available)


def is_restricted(market: MarketDataResource) -> bool:
    """True when the run computes only some strategies (``QUANT_PIPELINE_STRATEGIES``)."""
    return market.settings().strategies is not None


def owned_strategies(market: MarketDataResource) -> list[str]:
    """The strategy keys a run owns: its strategies (blend sleeves included) and the benchmark."""
    return sorted({*selected_strategies(market), BENCHMARK})


def write_owned(
    wh: Warehouse,
    market: MarketDataResource,
    table: str,
    frame: pl.DataFrame,
    column: str = "strategy",
    keys: Sequence[object] | None = None,
) -> int:
    """Write a run's rows of ``table``, keyed by ``column`` (default ``strategy``).

    A full run replaces the whole table (rows of a strategy no longer shipped go). A run
    restricted to some strategies replaces, in one transaction, only the rows whose ``column``
    is in ``keys`` (default :func:`owned_strategies`); every other strategy's rows stay as the
    last run that owned them wrote them. Returns the rows written."""
    if not is_restricted(market):
        return wh.replace_table(table, frame)
    owned = owned_strategies(market) if keys is None else list(keys)
    return wh.replace_partition(table, frame, column, owned)


def strategy_plan(market: MarketDataResource, warehouse: WarehouseResource) -> StrategyPlan:
    """The configured strategies split into runnable and skipped (with the reason) by what the
    curated tables hold: a price-only warehouse runs the price-only strategies, and a strategy
    whose exchange rule would fail every ticker (no exchange known) is skipped saying so."""
    reader = warehouse.read_only()
    counts = reader.input_counts()
    present = available_inputs(
        fundamentals_rows=counts["fundamentals_rows"],
        securities_with_sector=counts["securities_with_sector"],
        rows_with_shares=counts["fundamentals_with_shares"] + counts["securities_with_shares"],
    )
    coverage = ProfileCoverage(**reader.profile_coverage())
    return plan_strategies(selected_strategies(market), present, coverage)


def runnable_strategies(
    market: MarketDataResource, warehouse: WarehouseResource
) -> dict[str, StrategySpec]:
    """The strategies :func:`strategy_plan` can run (sector caps dropped without sectors)."""
    return strategy_plan(market, warehouse).runnable

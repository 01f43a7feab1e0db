"""Which strategies a run computes: every shipped YAML file, or the ones named in settings
(plus the sleeves the named blends need), minus those the warehouse lacks the inputs for."""

from quant_pipeline.config.strategies import load_strategies
from quant_pipeline.core.strategies.requirements import (
    StrategyPlan,
    available_inputs,
    plan_strategies,
)
from quant_pipeline.core.strategies.spec import StrategySpec, with_blend_sleeves
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource


def selected_strategies(market: MarketDataResource) -> dict[str, StrategySpec]:
    """The configured strategies, whatever data the warehouse holds."""
    names = market.settings().strategies
    available = load_strategies()
    if names is None:
        return available
    return with_blend_sleeves(load_strategies(names=names), available)


def strategy_plan(market: MarketDataResource, warehouse: WarehouseResource) -> StrategyPlan:
    """The configured strategies split into runnable and skipped (with the reason) by what the
    curated tables hold: a price-only warehouse runs the price-only strategies."""
    counts = warehouse.read_only().input_counts()
    present = available_inputs(
        fundamentals_rows=counts["fundamentals_rows"],
        securities_with_sector=counts["securities_with_sector"],
        rows_with_shares=counts["fundamentals_with_shares"] + counts["securities_with_shares"],
    )
    return plan_strategies(selected_strategies(market), present)


def runnable_strategies(
    market: MarketDataResource, warehouse: WarehouseResource
) -> dict[str, StrategySpec]:
    """The strategies :func:`strategy_plan` can run (sector caps dropped without sectors)."""
    return strategy_plan(market, warehouse).runnable

"""Which strategies a run computes: every shipped YAML file, or the ones named in settings."""

from quant_pipeline.core.strategy import StrategySpec, load_strategies
from quant_pipeline.defs.resources import MarketDataResource


def selected_strategies(market: MarketDataResource) -> dict[str, StrategySpec]:
    return load_strategies(names=market.settings().strategies)

"""Which strategies a run computes: every shipped YAML file, or the ones named in settings
(plus the sleeves the named blends need)."""

from quant_pipeline.config.strategies import load_strategies
from quant_pipeline.core.strategies.spec import StrategySpec, with_blend_sleeves
from quant_pipeline.defs.resources import MarketDataResource


def selected_strategies(market: MarketDataResource) -> dict[str, StrategySpec]:
    names = market.settings().strategies
    available = load_strategies()
    if names is None:
        return available
    return with_blend_sleeves(load_strategies(names=names), available)

"""The number of stocks as an option of any strategy: a spec resized to ``stocks`` positions.

Pure. ``quant-pipeline orders --stocks N`` (and ``stocks:`` in portfolios.yaml) rebuild the
latest book of a strategy or a theme with N positions instead of the file's count:

* kind factor: ``portfolio.top_n`` = N (same scores, same sector cap rule: at most
  floor(max_sector_weight x N) names per sector);
* kind staggered: ``portfolio.top_n`` = N and ``buy_per_rebalance`` = ceil(N / hold_periods),
  so the book still fills in ``hold_periods`` rebalances (the last tranche may be smaller);
* kind signal: ``max_positions`` = N;
* kind blend holds strategies, not stocks: refused.
"""

from __future__ import annotations

import math
from dataclasses import replace

from quant_pipeline.core.strategies.spec import StrategySpec


def with_stocks(spec: StrategySpec, stocks: int) -> StrategySpec:
    """``spec`` with ``stocks`` positions (see the module docstring); its config hash changes."""
    if isinstance(stocks, bool) or not isinstance(stocks, int) or stocks < 1:
        raise ValueError(f"strategy {spec.name!r}: stocks must be an integer >= 1, got {stocks!r}")
    if spec.kind == "blend":
        raise ValueError(
            f"strategy {spec.name!r} is a blend (it holds strategies, not stocks): "
            "stocks does not apply; choose one of its sleeves or a theme"
        )
    if spec.kind == "signal":
        assert spec.signal is not None
        return replace(spec, signal=replace(spec.signal, max_positions=stocks))
    assert spec.portfolio is not None
    portfolio = spec.portfolio.model_copy(update={"top_n": stocks})
    if spec.kind == "staggered":
        assert spec.staggered is not None
        per = math.ceil(stocks / spec.staggered.hold_periods)
        tranche = spec.staggered.model_copy(update={"buy_per_rebalance": per})
        return replace(spec, portfolio=portfolio, staggered=tranche)
    return replace(spec, portfolio=portfolio)

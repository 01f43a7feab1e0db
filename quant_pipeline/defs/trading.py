"""Run configuration of the share-based backtest: capital, shares, commissions, slippage, cash.

``BacktestConfig`` is the run config of the ``backtest/daily`` step (launchpad: ``ops:
backtest__daily...``; every field has a default, so a plain materialization needs none). A
strategy file's ``trading:`` section overrides any of these fields for that strategy, and the
older ``costs.bps`` is added to the slippage (it was a charge in basis points of traded value).

When to trade: ``tolerance_band`` (default 20% of the target weight, Daryanani 2008),
``min_trade_value`` (default None = commission-aware: the order value below which the minimum
commission exceeds 0.5% of it) and ``resize_held`` (None = by kind: signal and staggered
strategies keep the names they hold and trade only exits and new names; factor strategies resize
outside the band). See core.backtest.share_simulation.
"""

import dagster as dg
import polars as pl

from quant_pipeline.core.backtest.share_simulation import TradingModel
from quant_pipeline.core.strategies.spec import StrategySpec

# A holding is resized when it drifts more than 20% of its target weight away from it
# (Daryanani 2008, "Opportunistic Rebalancing: A New Paradigm for Wealth Managers").
DEFAULT_TOLERANCE_BAND = 0.2
KEEP_HELD_KINDS = ("signal", "staggered")


class BacktestConfig(dg.Config):
    """Trading model of the backtest (defaults: $100,000, whole shares, IB fixed commissions)."""

    capital: float = 100_000.0
    fractional: bool = False
    commission_per_share: float = 0.005
    commission_minimum: float = 1.0
    commission_maximum_pct: float = 0.01
    commission_bps: float = 0.0
    slippage_bps: float = 0.0
    cash_rate: float = 0.0
    tolerance_band: float = DEFAULT_TOLERANCE_BAND
    # None: commission-aware (commission_minimum / 0.005, $200 at IB's $1 minimum).
    min_trade_value: float | None = None
    # None: False for kinds signal and staggered (only exits and new names trade), else True.
    resize_held: bool | None = None
    # Applied to the last price of a holding whose prices stop (e.g. -0.3); None closes it at the
    # last price. See README "Bias labels".
    delisting_return: float | None = None


def trading_model(config: BacktestConfig, spec: StrategySpec) -> TradingModel:
    """The run's settings, overridden by the strategy's ``trading:`` section, plus
    ``costs.bps`` as extra slippage; ``resize_held`` unset follows the strategy's kind."""
    settings = {
        "capital": config.capital,
        "fractional": config.fractional,
        "commission_per_share": config.commission_per_share,
        "commission_minimum": config.commission_minimum,
        "commission_maximum_pct": config.commission_maximum_pct,
        "commission_bps": config.commission_bps,
        "slippage_bps": config.slippage_bps,
        "cash_rate": config.cash_rate,
        "tolerance_band": config.tolerance_band,
        "min_trade_value": config.min_trade_value,
        "resize_held": spec.kind not in KEEP_HELD_KINDS
        if config.resize_held is None
        else config.resize_held,
    }
    settings.update(spec.trading.overrides())
    settings["slippage_bps"] = settings["slippage_bps"] + spec.costs.bps
    try:
        return TradingModel.from_settings(**settings)
    except ValueError as exc:
        raise dg.Failure(f"strategy {spec.name!r}: trading settings {settings}: {exc}") from exc


def model_settings(model: TradingModel) -> pl.DataFrame:
    """The model as one row of the ``BacktestConfig`` fields (``commission_maximum_pct`` -1 =
    no cap), for ``backtest.settings``."""
    c = model.commission
    return pl.DataFrame(
        {
            "capital": [model.capital],
            "fractional": [model.fractional],
            "commission_per_share": [c.per_share],
            "commission_minimum": [c.minimum],
            "commission_maximum_pct": [-1.0 if c.maximum_pct == float("inf") else c.maximum_pct],
            "commission_bps": [c.bps],
            "slippage_bps": [c.slippage_bps],
            "cash_rate": [model.cash_rate],
            "tolerance_band": [model.tolerance_band],
            "min_trade_value": [model.min_trade_value],
            "resize_held": [model.resize_held],
        }
    )

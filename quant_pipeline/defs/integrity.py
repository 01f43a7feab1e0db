"""Research integrity: the blocking lookahead audit of factors.scores, and backtest bias labels."""

import dagster as dg
import polars as pl

from quant_pipeline.core.backtest.bias_labels import bias_labels
from quant_pipeline.core.backtest.lookahead_audit import (
    DEFAULT_SAMPLE_DATES,
    audit_lookahead,
    sample_dates,
)
from quant_pipeline.core.strategies.requirements import StrategyPlan, plan_labels
from quant_pipeline.core.strategies.spec import StrategySpec
from quant_pipeline.defs.metadata import markdown_table
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.defs.strategies import runnable_strategies
from quant_pipeline.storage.warehouse import Warehouse

PRICE_COLUMNS = ["ticker", "date", "close", "adj_close", "volume", "daily_return"]


class LookaheadAuditConfig(dg.Config):
    """How many past rebalance dates the audit recomputes (spread evenly, deterministic)."""

    sample_dates: int = DEFAULT_SAMPLE_DATES


@dg.asset_check(
    asset=dg.AssetKey(["factors", "scores"]),
    blocking=True,
    additional_deps=[
        dg.AssetKey(["factors", "values"]),
        dg.AssetKey(["curated", "prices"]),
        dg.AssetKey(["curated", "fundamentals"]),
        dg.AssetKey(["curated", "securities"]),
        dg.AssetKey(["curated", "membership"]),
    ],
)
def scores_match_point_in_time_recomputation(
    config: LookaheadAuditConfig, market: MarketDataResource, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    """Factor values and scores of sampled dates equal a recomputation from data known then."""
    wh = warehouse.get()
    values = wh.read_table("factors.values")
    dates = sample_dates(values["rebalance_date"].unique().to_list(), config.sample_dates)
    membership = wh.read_table("curated.membership")
    result = audit_lookahead(
        values,
        wh.read_table("factors.scores"),
        wh.read_table("curated.prices", columns=PRICE_COLUMNS),
        wh.read_table("curated.fundamentals_vintages"),
        wh.read_table("curated.securities"),
        membership if membership.height else None,
        runnable_strategies(market, warehouse),
        dates,
    )
    return dg.AssetCheckResult(
        passed=result.passed,
        description=result.message(),
        metadata={
            "dates_checked": dg.MetadataValue.json([str(d) for d in result.dates]),
            "rows_compared": result.rows_compared,
            "mismatches": result.mismatches.height,
            "first_mismatches": dg.MetadataValue.md(markdown_table(result.mismatches)),
            "message": result.message(),
        },
    )


def write_bias_labels(
    wh: Warehouse,
    market: MarketDataResource,
    specs: dict[str, StrategySpec],
    prices: pl.DataFrame,
    membership: pl.DataFrame,
    delisting_return: float | None,
    trading_models: dict[str, str] | None = None,
    plan: StrategyPlan | None = None,
) -> pl.DataFrame:
    """Compute every strategy's bias labels, write ``backtest.labels`` and return them.

    ``trading_models`` (strategy → description of the simulated trading model: capital, share
    rounding, commissions, slippage) adds a ``trading_model`` label per strategy; ``plan`` adds
    a ``skipped`` label (the reason) per strategy left out for missing inputs and a
    ``sector_cap`` label per strategy whose cap was dropped.

    Called by the backtest asset with the frames it already holds (curated.prices with ticker and
    date, curated.membership); reads factors.values, factors.rebalance_dates,
    factors.fundamentals_vintage and curated.fundamentals.
    """
    values = wh.read_table(
        "factors.values", columns=["rebalance_date", "ticker", "in_universe", "shares_from_profile"]
    )
    schedule = wh.read_table("factors.rebalance_dates")
    vintage = wh.read_table("factors.fundamentals_vintage")
    fundamentals = wh.read_table(
        "curated.fundamentals", columns=["period_type", "period_end", "report_date", "available_at"]
    )
    last_dates = prices.group_by("ticker").agg(pl.col("date").max())
    delisted = int((last_dates["date"] < prices["date"].max()).sum()) if prices.height else 0
    rows = []
    for name, spec in specs.items():
        dates = schedule.filter(pl.col("frequency") == spec.rebalance).select("rebalance_date")
        rows.append(
            bias_labels(
                name,
                source=market.settings().source,
                cost_bps=spec.costs.bps,
                delisting_return=delisting_return,
                values=values.join(dates, on="rebalance_date", how="semi"),
                membership=membership if membership.height else None,
                fundamentals=fundamentals,
                vintage_report=vintage.join(dates, on="rebalance_date", how="semi"),
                delisted_tickers=delisted,
            )
        )
    if trading_models:
        rows.append(
            pl.DataFrame(
                {
                    "strategy": list(trading_models),
                    "label": ["trading_model"] * len(trading_models),
                    "value": list(trading_models.values()),
                },
                schema=rows[0].schema if rows else None,
            )
        )
    if plan is not None:
        rows.append(plan_labels(plan))
    labels = pl.concat(rows, how="vertical_relaxed")
    wh.replace_table("backtest.labels", labels)
    return labels


integrity_checks = [scores_match_point_in_time_recomputation]

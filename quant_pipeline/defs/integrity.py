"""Research integrity: the blocking lookahead audit of factors.scores, and backtest bias labels."""

import dagster as dg
import polars as pl

from quant_pipeline.core.backtest.bias_labels import bias_labels, data_labels
from quant_pipeline.core.backtest.lookahead_audit import (
    DEFAULT_SAMPLE_DATES,
    audit_lookahead,
    sample_dates,
)
from quant_pipeline.core.data.schema import CLOSE_PRICE_COLUMNS
from quant_pipeline.core.data.share_basis import SHARE_BASIS_TABLE
from quant_pipeline.core.data.suspect_moves import (
    HELD_THROUGH_SCHEMA,
    SUSPECT_MOVES_TABLE,
    held_through,
)
from quant_pipeline.core.strategies.requirements import StrategyPlan, plan_labels
from quant_pipeline.core.strategies.spec import StrategySpec
from quant_pipeline.defs.metadata import markdown_table
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.defs.strategies import is_restricted, runnable_strategies
from quant_pipeline.defs.tables import TableReader, reads

AUDIT_READS = reads(
    "factors.values",
    "factors.scores",
    "curated.prices",
    "curated.fundamentals_vintages",
    "curated.securities",
    "curated.membership",
    SHARE_BASIS_TABLE,
)
# Read by bias_labels_table on behalf of the backtest step (part of that step's reads).
BIAS_LABEL_READS = (
    "factors.values",
    "factors.rebalance_dates",
    "factors.fundamentals_vintage",
    "curated.fundamentals",
    SHARE_BASIS_TABLE,
    SUSPECT_MOVES_TABLE,
)


class LookaheadAuditConfig(dg.Config):
    """How many past rebalance dates the audit recomputes (spread evenly, deterministic)."""

    sample_dates: int = DEFAULT_SAMPLE_DATES


@dg.asset_check(
    asset=dg.AssetKey(["factors", "scores"]),
    blocking=True,
    additional_deps=[k for k in AUDIT_READS.deps if k != dg.AssetKey(["factors", "scores"])],
)
def scores_match_point_in_time_recomputation(
    config: LookaheadAuditConfig, market: MarketDataResource, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    """Factor values and scores of sampled dates equal a recomputation from data known then."""
    read = AUDIT_READS.reader(warehouse.read_only())
    specs = runnable_strategies(market, warehouse)
    value_dates = read("factors.values", columns=["rebalance_date"])["rebalance_date"].unique()
    if is_restricted(market):  # audit what this run wrote, not others' dates
        scored = read("factors.scores", columns=["strategy", "rebalance_date"]).filter(
            pl.col("strategy").is_in(list(specs))
        )
        if scored.height:
            wrote = scored["rebalance_date"].unique().to_list()
            value_dates = value_dates.filter(value_dates.is_in(wrote))
    dates = sample_dates(value_dates.to_list(), config.sample_dates)
    # only the sampled dates' stored rows are compared: read no others
    values = read("factors.values", filters={"rebalance_date": dates})
    scores = read("factors.scores", filters={"rebalance_date": dates}).filter(
        pl.col("strategy").is_in(list(specs))
    )
    membership = read("curated.membership")
    result = audit_lookahead(
        values,
        scores,
        read("curated.prices", columns=CLOSE_PRICE_COLUMNS),
        read("curated.fundamentals_vintages"),
        read("curated.securities"),
        membership if membership.height else None,
        specs,
        dates,
        share_basis=read(SHARE_BASIS_TABLE),
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


def bias_labels_table(
    read: TableReader,
    source: str,
    specs: dict[str, StrategySpec],
    prices: pl.DataFrame,
    membership: pl.DataFrame,
    delisting_return: float | None,
    trading_models: dict[str, str] | None = None,
    trades: pl.DataFrame | None = None,
    plan: StrategyPlan | None = None,
) -> pl.DataFrame:
    """Every strategy's bias labels (the rows of ``backtest.labels``) from data ``source``.

    ``trading_models`` (strategy → description of the simulated trading model: capital, share
    rounding, commissions, slippage) adds a ``trading_model`` label per strategy. ``trades``
    (the step's backtest.trades rows) gives the ``suspect_moves`` label the positions held
    through a suspect move; every strategy also gets its ``share_basis`` label. ``plan`` adds
    a ``skipped`` label (the reason) per strategy left out for missing inputs and a
    ``sector_cap`` label per strategy whose cap was dropped.

    Called by the backtest asset with the frames it already holds (curated.prices with ticker and
    date, curated.membership) and its reader, through which it reads ``BIAS_LABEL_READS``.
    """
    values = read(
        "factors.values", columns=["rebalance_date", "ticker", "in_universe", "shares_from_profile"]
    )
    schedule = read("factors.rebalance_dates")
    vintage = read("factors.fundamentals_vintage")
    fundamentals = read(
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
                source=source,
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
    moves = read(SUSPECT_MOVES_TABLE)
    held = pl.DataFrame(schema=HELD_THROUGH_SCHEMA)
    if trades is not None:
        held = held_through(trades, moves)
    rows.append(data_labels(list(specs), read(SHARE_BASIS_TABLE), moves, held))
    if plan is not None:
        rows.append(plan_labels(plan))
    return pl.concat(rows, how="vertical_relaxed")


integrity_checks = [scores_match_point_in_time_recomputation]

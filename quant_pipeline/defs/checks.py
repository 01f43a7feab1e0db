"""Asset checks: contracts every build must satisfy, visible in the UI with the offending rows."""

import dagster as dg
import polars as pl

from quant_pipeline.app.market_calendar import sessions_behind
from quant_pipeline.app.recommendation import market_today
from quant_pipeline.core.data.frames import is_sorted_by
from quant_pipeline.defs.metadata import markdown_table
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.defs.strategies import runnable_strategies
from quant_pipeline.defs.tables import reads

WEIGHT_TOLERANCE = 1e-9
WEIGHTS_READS = reads("portfolio.target_weights")
PRICES_READS = reads("curated.prices")


@dg.asset_check(asset=dg.AssetKey(["portfolio", "target_weights"]), blocking=True)
def target_weights_sum_to_one(
    market: MarketDataResource, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    """Weights sum to 1 (kind factor) or at most 1 (staggered, signal: cash); none negative."""
    weights = WEIGHTS_READS.reader(warehouse.read_only())("portfolio.target_weights")
    fully_invested = [
        n for n, s in runnable_strategies(market, warehouse).items() if s.kind == "factor"
    ]
    sums = weights.group_by("strategy", "rebalance_date").agg(
        pl.col("weight").sum().alias("weight_sum"), (pl.col("weight") < 0).sum().alias("negative")
    )
    must_be_one = pl.col("strategy").is_in(fully_invested)
    bad = sums.filter(
        (must_be_one & ((pl.col("weight_sum") - 1).abs() > WEIGHT_TOLERANCE))
        | (pl.col("weight_sum") > 1 + WEIGHT_TOLERANCE)
        | (pl.col("negative") > 0)
    )
    return dg.AssetCheckResult(
        passed=bad.is_empty(),
        metadata={
            "portfolios_checked": sums.height,
            "violations": bad.height,
            "examples": dg.MetadataValue.md(markdown_table(bad)),
        },
    )


@dg.asset_check(asset=dg.AssetKey(["curated", "prices"]), blocking=True)
def curated_prices_unique_per_ticker_day(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """curated.prices holds at most one row per ticker and date."""
    read = PRICES_READS.reader(warehouse.read_only())
    keys = read("curated.prices", columns=["ticker", "date"])
    if is_sorted_by(keys, ["ticker", "date"]):
        # stored in strictly increasing (ticker, date) order: each key once, proven in O(n)
        counts = pl.DataFrame(schema={"ticker": pl.String, "date": pl.Date, "len": pl.UInt32})
    else:
        counts = keys.group_by("ticker", "date").len().filter(pl.col("len") > 1)
    return dg.AssetCheckResult(
        passed=counts.is_empty(),
        metadata={
            "duplicates": counts.height,
            "examples": dg.MetadataValue.md(markdown_table(counts)),
        },
    )


@dg.asset_check(asset=dg.AssetKey(["curated", "prices"]), blocking=False)
def curated_prices_are_fresh(
    market: MarketDataResource, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    """Warns when curated.prices' latest date is more NYSE sessions old than allowed."""
    read = PRICES_READS.reader(warehouse.read_only())
    latest = read("curated.prices", columns=["date"])["date"].max()
    limit = market.settings().stale_after_sessions
    today = market_today()
    behind = None if latest is None else sessions_behind(latest, today)
    return dg.AssetCheckResult(
        passed=behind is not None and behind <= limit,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            "curated.prices is empty"
            if behind is None
            else f"latest date {latest}: {behind} NYSE session(s) before {today} missing "
            f"(limit {limit}, QUANT_PIPELINE_STALE_AFTER_SESSIONS)"
        ),
        metadata={
            "latest_date": str(latest),
            "today_new_york": str(today),
            "sessions_behind": behind,
            "stale_after_sessions": limit,
        },
    )


asset_checks = [
    target_weights_sum_to_one,
    curated_prices_unique_per_ticker_day,
    curated_prices_are_fresh,
]

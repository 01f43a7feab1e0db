"""Asset checks: contracts every build must satisfy, visible in the UI with the offending rows."""

import dagster as dg
import polars as pl

from quant_pipeline.core.data.frames import is_sorted_by
from quant_pipeline.defs.metadata import markdown_table
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.defs.strategies import selected_strategies
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
    fully_invested = [n for n, s in selected_strategies(market).items() if s.kind == "factor"]
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


asset_checks = [target_weights_sum_to_one, curated_prices_unique_per_ticker_day]

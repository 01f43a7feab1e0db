"""Curated assets: validated, adjusted, point-in-time tables built from the raw layer."""

import dagster as dg

from quant_pipeline.core.data import curation as curate
from quant_pipeline.core.data.price_rules import SpikeRule
from quant_pipeline.core.data.validation import validate
from quant_pipeline.defs.metadata import table_metadata
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource

GROUP = "curated"
KINDS = {"duckdb", "polars", "pandera"}


@dg.asset(
    key=["curated", "prices"],
    deps=[["raw", "prices"], ["raw", "corporate_actions"]],
    group_name=GROUP,
    kinds=KINDS,
    pool="warehouse",
)
def curated_prices(
    context: dg.AssetExecutionContext, market: MarketDataResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Validated daily prices with split- and dividend-adjusted close and daily total return."""
    source = market.settings().source
    wh = warehouse.get()
    as_of = market.as_of_date()
    spikes = SpikeRule(market.spike_threshold, market.spike_reversal_days)
    result = curate.curate_prices(
        wh.read_raw("prices", source),
        wh.read_raw("corporate_actions", source),
        as_of=as_of,
        spikes=spikes,
    )
    prices = validate(result.prices, "curated.prices")
    wh.replace_table("curated.prices", prices)
    wh.replace_table("curated.rejected_prices", result.rejected)
    if result.rejected.height:
        context.log.warning(
            f"{result.rejected.height} raw price rows rejected; see curated.rejected_prices"
        )
    return dg.MaterializeResult(
        metadata=table_metadata(
            "curated.prices",
            prices,
            tickers=prices["ticker"].n_unique(),
            first_date=str(prices["date"].min()),
            last_date=str(prices["date"].max()),
            rejected_rows=result.rejected.height,
            as_of=str(as_of),
            spike_threshold=spikes.threshold,
            spike_reversal_days=spikes.reversal_rows,
        )
    )


class FundamentalsTiming(dg.Config):
    """When a fundamental becomes usable if the source gives no report date."""

    quarter_lag_days: int = 45
    annual_lag_days: int = 90


@dg.asset(
    key=["curated", "fundamentals"],
    deps=[["raw", "fundamentals"]],
    group_name=GROUP,
    kinds=KINDS,
    pool="warehouse",
)
def curated_fundamentals(
    config: FundamentalsTiming, market: MarketDataResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Wide fundamentals per ticker and period, with available_at and trailing-12-month values."""
    source = market.settings().source
    wh = warehouse.get()
    raw = wh.read_raw("fundamentals", source)
    lags = {"quarter_lag_days": config.quarter_lag_days, "annual_lag_days": config.annual_lag_days}
    wide = validate(curate.curate_fundamentals(raw, **lags), "curated.fundamentals")
    # Every ingested version of every period: factors use the one known at each rebalance date.
    vintages = curate.fundamentals_vintages(raw, **lags)
    wh.replace_table("curated.fundamentals", wide)
    wh.replace_table("curated.fundamentals_vintages", vintages)
    reported = wide["report_date"].is_not_null().sum() if wide.height else 0
    return dg.MaterializeResult(
        metadata=table_metadata(
            "curated.fundamentals",
            wide,
            tickers=wide["ticker"].n_unique(),
            rows_with_report_date=int(reported),
            restatement_versions=int(vintages.height - wide.height),
            quarter_lag_days=config.quarter_lag_days,
            annual_lag_days=config.annual_lag_days,
        )
    )


@dg.asset(
    key=["curated", "securities"],
    deps=[["raw", "securities"]],
    group_name=GROUP,
    kinds=KINDS,
    pool="warehouse",
)
def curated_securities(
    market: MarketDataResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """The latest profile of every security (name, sector, industry, shares, market cap)."""
    wh = warehouse.get()
    securities = validate(
        curate.curate_securities(wh.read_raw("securities", market.settings().source)),
        "curated.securities",
    )
    wh.replace_table("curated.securities", securities)
    sectors = securities.group_by("sector").len().sort("len", descending=True)
    return dg.MaterializeResult(
        metadata=table_metadata(
            "curated.securities",
            securities,
            sectors=dg.MetadataValue.json(dict(sectors.select("sector", "len").iter_rows())),
        )
    )


@dg.asset(
    key=["curated", "membership"],
    deps=[["raw", "membership"]],
    group_name=GROUP,
    kinds=KINDS,
    pool="warehouse",
)
def curated_membership(
    market: MarketDataResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Universe membership intervals (who was in the universe on which dates)."""
    wh = warehouse.get()
    membership = validate(
        curate.curate_membership(wh.read_raw("membership", market.settings().source)),
        "curated.membership",
    )
    wh.replace_table("curated.membership", membership)
    return dg.MaterializeResult(metadata=table_metadata("curated.membership", membership))


curated_assets = [curated_prices, curated_fundamentals, curated_securities, curated_membership]

"""Ingestion assets: what the configured source returns, appended to the raw tables."""

from datetime import timedelta

import dagster as dg
import polars as pl

from quant_pipeline.defs.metadata import table_metadata
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.sources.base import FetchRequest, SourceError

GROUP = "ingestion"
KINDS = {"duckdb", "polars"}

_DESCRIPTIONS = {
    "prices": "Daily OHLCV prices as fetched (as-traded close and adjusted close).",
    "corporate_actions": "Splits and cash dividends as fetched.",
    "fundamentals": "Statement items (long format) with every ingested vintage kept.",
    "securities": "Company profiles (name, sector, industry, shares, market cap) as fetched.",
    "membership": "Universe membership intervals as fetched.",
}
# Datasets without which nothing downstream can be computed: an empty fetch is a failure.
_REQUIRED = {"prices", "fundamentals", "securities"}


def _price_request(warehouse, source_name: str, overlap_days: int) -> FetchRequest:
    """Incremental prices: each known ticker from its last stored date minus an overlap.

    Tickers never seen get their full history (they are absent from ``per_ticker_start``).
    """
    last = warehouse.last_dates("prices", source_name)
    starts = {
        ticker: last_date - timedelta(days=overlap_days)
        for ticker, last_date in zip(last["ticker"], last["last_date"], strict=True)
    }
    return FetchRequest(per_ticker_start=starts)


def ingest(
    context: dg.AssetExecutionContext,
    dataset: str,
    market: MarketDataResource,
    warehouse_resource: WarehouseResource,
) -> dg.MaterializeResult:
    """Fetch ``dataset`` from the configured source and append it to ``raw.<dataset>``."""
    settings = market.settings()
    source = market.get_source()
    warehouse = warehouse_resource.get()
    if dataset == "prices":
        request = _price_request(warehouse, settings.source, market.price_overlap_days)
    else:
        request = FetchRequest()
    try:
        frame = getattr(source, dataset)(request)
    finally:
        log = getattr(source, "ingest_log", None)
        if isinstance(log, pl.DataFrame) and log.height:
            warehouse.log_ingest(log)
    if frame.is_empty() and dataset in _REQUIRED:
        # Nothing is written: the raw table keeps every row it had.
        raise SourceError(
            f"source {settings.source!r} returned no {dataset}; raw.{dataset} is unchanged"
        )
    stats = warehouse.write_raw(dataset, frame)
    context.log.info(f"raw.{dataset}: {stats}")
    failed = []
    if isinstance(log, pl.DataFrame) and "status" in log.columns:
        failed = log.filter(pl.col("status") != "ok")["ticker"].unique().sort().to_list()
    return dg.MaterializeResult(
        metadata=table_metadata(
            f"raw.{dataset}",
            frame,
            source=settings.source,
            rows_fetched=frame.height,
            rows_inserted=stats.inserted,
            rows_updated=stats.updated,
            rows_unchanged=stats.unchanged,
            table_rows=warehouse.row_count(f"raw.{dataset}"),
            tickers=frame["ticker"].n_unique() if "ticker" in frame.columns else 0,
            failed_tickers=dg.MetadataValue.json(failed[:200]),
        )
    )


def _raw_asset(dataset: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=["raw", dataset],
        group_name=GROUP,
        kinds=KINDS,
        description=_DESCRIPTIONS[dataset],
        pool="warehouse",
    )
    def _asset(
        context: dg.AssetExecutionContext,
        market: MarketDataResource,
        warehouse: WarehouseResource,
    ) -> dg.MaterializeResult:
        return ingest(context, dataset, market, warehouse)

    return _asset


raw_prices = _raw_asset("prices")
raw_corporate_actions = _raw_asset("corporate_actions")
raw_fundamentals = _raw_asset("fundamentals")
raw_securities = _raw_asset("securities")
raw_membership = _raw_asset("membership")

ingestion_assets = [
    raw_prices,
    raw_corporate_actions,
    raw_fundamentals,
    raw_securities,
    raw_membership,
]

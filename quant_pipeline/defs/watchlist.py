"""Watchlist assets: the symbols a person watches and their latest status after each rebuild."""

import dagster as dg

from quant_pipeline.app.watchlist import INPUTS, SYMBOLS_TABLE, read_symbols, status
from quant_pipeline.defs.metadata import markdown_table, table_metadata
from quant_pipeline.defs.resources import WarehouseResource
from quant_pipeline.defs.tables import asset_key, reads

GROUP = "watchlist"
SYMBOLS = asset_key(SYMBOLS_TABLE)
# What status() reads: the symbols and the tables of app.watchlist.INPUTS.
STATUS_READS = reads(SYMBOLS_TABLE, *INPUTS)

# Written by `quant-pipeline watch add|remove`, not by a materialization: an external asset, so
# the lineage shows where watchlist/status comes from.
watchlist_symbols = dg.AssetSpec(
    SYMBOLS,
    description="Symbols you watch (`quant-pipeline watch add|remove SYMBOL...`).",
    group_name=GROUP,
    kinds={"duckdb"},
    metadata={"dagster/table_name": SYMBOLS_TABLE},
)


@dg.asset(
    key=["watchlist", "status"],
    deps=STATUS_READS.deps,
    description="Each watched symbol's latest price, scores per strategy, signal and holding.",
    group_name=GROUP,
    kinds={"duckdb", "polars"},
    pool="warehouse",
)
def watchlist_status(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """Recompute the status of every watched symbol from the freshly built tables."""
    read_only = warehouse.read_only()
    table = status(read_only)
    warehouse.get().replace_table("watchlist.status", table)
    watched = read_symbols(read_only).height
    if watched == 0:
        context.log.info("the watchlist is empty: add symbols with `quant-pipeline watch add`")
    held = table.filter(table["held"].fill_null(False))
    return dg.MaterializeResult(
        metadata=table_metadata(
            "watchlist.status",
            table,
            watched_symbols=watched,
            held_by_a_strategy=dg.MetadataValue.md(markdown_table(held.drop("added_at"))),
        )
    )


watchlist_assets = [watchlist_symbols, watchlist_status]

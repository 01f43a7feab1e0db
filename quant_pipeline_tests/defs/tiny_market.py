"""A hand-made warehouse for the orders tests: six tickers, four days, two strategies.

Latest closes (Thu 2024-03-28): A 150, B 70, C 33, D 400, E 20 (docs/orders.md worked example).
F stops trading on Fri 2024-03-15.

portfolio.target_weights
  magic_formula          2023-10-02: A 0.5, B 0.5 (older, must be ignored)
                         2024-01-02: A 0.4, B 0.3, C 0.2, D 0.1
  multifactor_smallcap   2024-01-02: A 0.5, F 0.5 (F's price is stale by 2024-03-28)
                         2024-04-01: A 1.0 (after an as-of of 2024-03-28: must be ignored then)

A's closes 160, 200, 170, 150 (Mon-Thu) make 100 A + 50 E worth 17,000, 21,000, 18,000,
16,000: 23.8% below the peak on Thursday.
"""

from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import polars as pl

from quant_pipeline.core.data.schema import RAW_PRICES, conform
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.storage.warehouse import Warehouse
from quant_pipeline_tests.pins import DEMO_END_ISO

AS_OF = date(2024, 3, 28)
DAYS = [date(2024, 3, 25), date(2024, 3, 26), date(2024, 3, 27), date(2024, 3, 28)]
CLOSES = {
    "A": [160.0, 200.0, 170.0, 150.0],
    "B": [70.0] * 4,
    "C": [33.0] * 4,
    "D": [400.0] * 4,
    "E": [20.0] * 4,
}
SECTORS = {
    "A": "Information Technology",
    "B": "Health Care",
    "C": "Industrials",
    "D": "Financials",
    "E": "Energy",
    "F": "Materials",
}


def build_warehouse(path: Path) -> Warehouse:
    rows = [(t, d, c, c) for t, closes in CLOSES.items() for d, c in zip(DAYS, closes, strict=True)]
    rows += [("F", date(2024, 3, d), 10.0, 10.0) for d in (11, 12, 13, 14, 15)]
    prices = pl.DataFrame(
        rows,
        schema={"ticker": pl.String, "date": pl.Date, "close": pl.Float64, "adj_close": pl.Float64},
        orient="row",
    )
    weights = pl.DataFrame(
        [
            ("magic_formula", date(2023, 10, 2), "A", 0.5),
            ("magic_formula", date(2023, 10, 2), "B", 0.5),
            ("magic_formula", date(2024, 1, 2), "A", 0.4),
            ("magic_formula", date(2024, 1, 2), "B", 0.3),
            ("magic_formula", date(2024, 1, 2), "C", 0.2),
            ("magic_formula", date(2024, 1, 2), "D", 0.1),
            ("multifactor_smallcap", date(2024, 1, 2), "A", 0.5),
            ("multifactor_smallcap", date(2024, 1, 2), "F", 0.5),
            ("multifactor_smallcap", date(2024, 4, 1), "A", 1.0),
        ],
        schema={
            "strategy": pl.String,
            "rebalance_date": pl.Date,
            "ticker": pl.String,
            "weight": pl.Float64,
        },
        orient="row",
    ).with_columns(
        pl.col("ticker").replace_strict(SECTORS).alias("sector"),
        pl.lit(1.0).alias("score"),
        pl.lit(1).alias("rank"),
    )
    securities = pl.DataFrame(
        {"ticker": list(SECTORS), "sector": list(SECTORS.values())},
    )
    wh = Warehouse(path)
    # what a demo ingestion would have stored: packets read their data source from it
    raw = prices.with_columns(
        pl.lit("demo").alias("source"),
        pl.lit(datetime(2024, 3, 29, tzinfo=UTC)).alias("ingested_at"),
    )
    wh.write_raw("prices", conform(raw, RAW_PRICES))
    wh.replace_table("curated.prices", prices)
    wh.replace_table("portfolio.target_weights", weights)
    wh.replace_table("curated.securities", securities)
    return wh


def resources(path: Path) -> dict[str, object]:
    return {
        "warehouse": WarehouseResource(path=str(path)),
        "market": MarketDataResource(source="demo", demo_end=DEMO_END_ISO),
    }


def materialize(assets: list, path: Path, config: dict) -> dg.ExecuteInProcessResult:
    with dg.DagsterInstance.ephemeral() as instance:
        return dg.materialize(
            assets,
            resources=resources(path),
            run_config={"ops": {"orders_packets": {"config": config}}},
            instance=instance,
            raise_on_error=False,
        )


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure:
            return event.step_failure_data.error.message
    raise AssertionError("the run did not fail")

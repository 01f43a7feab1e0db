"""Research assets that guard against fooling yourself: multiple testing, sweeps, walk-forward."""

import dagster as dg
import polars as pl

from quant_pipeline.core.reporting.backtest_charts import md_image
from quant_pipeline.core.reporting.overfitting_charts import pbo_logits_png
from quant_pipeline.core.research.overfitting import multiple_testing_table
from quant_pipeline.defs.metadata import markdown_table, table_metadata
from quant_pipeline.defs.resources import WarehouseResource

GROUP = "research"
KINDS = {"duckdb", "polars"}
STATED_SHARPE = 1.0  # the annual Sharpe LEAN's PSR is measured against


def _summary_md(summary: dict) -> str:
    return markdown_table(pl.DataFrame([summary]), max_rows=1)


@dg.asset(
    key=["research", "multiple_testing"],
    deps=[["backtest", "daily"]],
    group_name=GROUP,
    kinds=KINDS,
    pool="warehouse",
)
def research_multiple_testing(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Every strategy's PSR vs 0, the benchmark and 1.0, its DSR given all strategies, and PBO."""
    wh = warehouse.get()
    daily = wh.read_table(
        "backtest.daily", columns=["strategy", "date", "portfolio_return", "benchmark_return"]
    )
    table, summary, pbo = multiple_testing_table(daily, "strategy", STATED_SHARPE)
    table = table.with_columns(
        n_trials=pl.lit(summary["n_trials"]),
        pbo=pl.lit(summary["pbo"], pl.Float64),
        benchmark_sharpe=pl.lit(summary["benchmark_sharpe"]),
        stated_sharpe=pl.lit(STATED_SHARPE),
    )
    wh.replace_table("research.multiple_testing", table)
    extra = {"summary": dg.MetadataValue.md(_summary_md(summary))}
    if pbo is not None:
        png = pbo_logits_png(pbo.logits, pbo.pbo, "CSCV logits over the shipped strategies")
        extra["pbo_chart"] = dg.MetadataValue.md(md_image(png, "PBO logits"))
    return dg.MaterializeResult(
        metadata=table_metadata("research.multiple_testing", table, **extra)
    )


research_guard_assets = [research_multiple_testing]

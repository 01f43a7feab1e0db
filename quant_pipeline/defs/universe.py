"""The universe screen as assets: every candidate with pass/fail and reason, and the summary."""

import dagster as dg

from quant_pipeline.app.screen import load_rules, rules_file, run_screen
from quant_pipeline.defs.metadata import markdown_table, table_metadata
from quant_pipeline.defs.resources import WarehouseResource
from quant_pipeline.defs.tables import reads

GROUP = "universe"
KINDS = {"duckdb", "polars"}
# What run_screen reads (fundamentals, securities and membership when present).
SCREEN_READS = reads(
    "curated.prices", "curated.fundamentals", "curated.securities", "curated.membership"
)


class ScreenConfig(dg.Config):
    """Run config of the screen (both optional)."""

    rules: str | None = None  # screen YAML; default QUANT_PIPELINE_SCREEN or the shipped one
    as_of: str | None = None  # YYYY-MM-DD; default the day after the last curated price


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["universe", "screened"],
            deps=SCREEN_READS.deps,
            description="Every candidate of the universe screen: passed, first failed rule, value.",
            group_name=GROUP,
            kinds=KINDS,
        ),
        dg.AssetSpec(
            ["universe", "screen_summary"],
            deps=[["universe", "screened"], *SCREEN_READS.deps],
            description="The universe screen by rule: names failed first, failed at all, left.",
            group_name=GROUP,
            kinds=KINDS,
        ),
    ],
    pool="warehouse",
)
def universe_screen(
    context: dg.AssetExecutionContext, config: ScreenConfig, warehouse: WarehouseResource
):
    """Screen the latest curated data with the configured rules."""
    from datetime import date
    from pathlib import Path

    path = Path(config.rules) if config.rules else rules_file()
    rules = load_rules(path)
    as_of = date.fromisoformat(config.as_of) if config.as_of else None
    day, result, summary = run_screen(warehouse.read_only(), rules, as_of)
    wh = warehouse.get()
    wh.replace_table("universe.screened", result)
    wh.replace_table("universe.screen_summary", summary)
    passed = int(result["passed"].sum())
    context.log.info(f"screen {path.name} as of {day}: {passed} of {result.height} pass")
    yield dg.MaterializeResult(
        asset_key=["universe", "screened"],
        metadata=table_metadata(
            "universe.screened",
            result,
            as_of=str(day),
            rules_file=str(path),
            passed=passed,
            failed=result.height - passed,
        ),
    )
    yield dg.MaterializeResult(
        asset_key=["universe", "screen_summary"],
        metadata=table_metadata(
            "universe.screen_summary", summary, summary=dg.MetadataValue.md(markdown_table(summary))
        ),
    )


universe_assets = [universe_screen]

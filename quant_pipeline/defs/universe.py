"""The universe screen as assets: every candidate with pass/fail and reason, and the summary."""

import dagster as dg

import quant_pipeline.app.screen as screen_app
import quant_pipeline.core.backtest.lookahead_audit as lookahead_module
import quant_pipeline.core.factors.values as values_module
import quant_pipeline.core.strategies.screen as screen_module
from quant_pipeline.app.screen import load_rules, rules_file, run_screen
from quant_pipeline.core.data.fingerprints import digest
from quant_pipeline.core.data.share_basis import SHARE_BASIS_TABLE
from quant_pipeline.defs.incremental import WholeStep, code_version, reuse_metadata
from quant_pipeline.defs.metadata import markdown_table, table_metadata
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.defs.tables import reads

GROUP = "universe"
KINDS = {"duckdb", "polars"}
# What run_screen reads (fundamentals, securities and membership when present).
SCREEN_READS = reads(
    "curated.prices",
    "curated.fundamentals",
    "curated.securities",
    "curated.membership",
    SHARE_BASIS_TABLE,
)
SCREEN = WholeStep(
    "universe.screened",
    "The digest of what the universe screen was computed from (the curated tables it reads, "
    "the rules, the as-of date, the code); unchanged = the stored screen is kept.",
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
        SCREEN.spec(GROUP, SCREEN_READS.deps),
    ],
    pool="warehouse",
)
def universe_screen(
    context: dg.AssetExecutionContext,
    config: ScreenConfig,
    market: MarketDataResource,
    warehouse: WarehouseResource,
):
    """Screen the latest curated data with the configured rules."""
    from datetime import date
    from pathlib import Path

    path = Path(config.rules) if config.rules else rules_file()
    rules = load_rules(path)
    as_of = date.fromisoformat(config.as_of) if config.as_of else None
    read = SCREEN_READS.reader(warehouse.read_only())
    inputs = [read.content_hash(t) for t in SCREEN_READS.tables]
    code = code_version(screen_app, screen_module, values_module, lookahead_module)
    reuse = SCREEN.plan(warehouse, market, digest(code, rules.model_dump_json(), as_of, *inputs))
    wh = warehouse.get()
    if reuse.computed.height:
        _day, result, summary = run_screen(warehouse.read_only(), rules, as_of)
        SCREEN.write(wh, reuse, {"universe.screened": result, "universe.screen_summary": summary})
    else:  # nothing the screen reads changed: the stored screen stands
        result, summary = (
            wh.read_table("universe.screened"),
            wh.read_table("universe.screen_summary"),
        )
    day = result["as_of"].first() if result.height else as_of
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
            **reuse_metadata(reuse),
        ),
    )
    yield dg.MaterializeResult(
        asset_key=["universe", "screen_summary"],
        metadata=table_metadata(
            "universe.screen_summary", summary, summary=dg.MetadataValue.md(markdown_table(summary))
        ),
    )
    yield dg.MaterializeResult(
        asset_key=SCREEN.digests.split("."),
        metadata={**table_metadata(SCREEN.digests, reuse.current), **reuse_metadata(reuse)},
    )


universe_assets = [universe_screen]

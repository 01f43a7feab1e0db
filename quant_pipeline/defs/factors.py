"""Factor assets: point-in-time factor values per rebalance date, and strategy scores."""

import dagster as dg
import polars as pl

from quant_pipeline.core.data.calendar import rebalance_dates, trading_days
from quant_pipeline.core.data.schema import CLOSE_PRICE_COLUMNS
from quant_pipeline.core.data.share_basis import SHARE_BASIS_TABLE
from quant_pipeline.core.factors.point_in_time import point_in_time_factor_values, vintage_report
from quant_pipeline.core.strategies.scoring import (
    COMPONENTS_SCHEMA,
    SCORES_SCHEMA,
    profile_columns,
    score,
    with_country,
)
from quant_pipeline.defs.metadata import table_metadata
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.defs.strategies import (
    runnable_strategies,
    strategy_plan,
    write_owned,
)
from quant_pipeline.defs.tables import reads, table_spec

GROUP = "factors"
KINDS = {"duckdb", "polars"}

VALUES_READS = reads(
    "curated.prices",
    "curated.fundamentals_vintages",
    "curated.securities",
    "curated.membership",
    SHARE_BASIS_TABLE,
)
SCORES_READS = reads("factors.values", "factors.rebalance_dates", "curated.securities")


@dg.multi_asset(
    name="factors__values",
    specs=[
        table_spec(
            "factors.values",
            "Every factor per rebalance date and ticker, from data available before that date.",
            GROUP,
            VALUES_READS.deps,
        ),
        table_spec(
            "factors.rebalance_dates",
            "The rebalance dates of each rebalance frequency the selected strategies use.",
            GROUP,
            VALUES_READS.deps,
        ),
        table_spec(
            "factors.fundamentals_vintage",
            "Per rebalance date: how many usable fundamentals rows were known then (point in "
            "time).",
            GROUP,
            VALUES_READS.deps,
        ),
    ],
    pool="warehouse",
)
def factor_values_asset(market: MarketDataResource, warehouse: WarehouseResource):
    """Rebalance dates, point-in-time factor values and the fundamentals vintage they used."""
    read = VALUES_READS.reader(warehouse.read_only())
    specs = runnable_strategies(market, warehouse)
    prices = read("curated.prices", columns=CLOSE_PRICE_COLUMNS)
    membership = read("curated.membership")
    days = trading_days(prices)
    schedule = pl.concat(
        [
            pl.DataFrame(
                {"frequency": freq, "rebalance_date": rebalance_dates(days, freq)},
                schema={"frequency": pl.String, "rebalance_date": pl.Date},
            )
            # signal and blend kinds need no scores; research reads the monthly dates
            for freq in sorted({s.rebalance for s in specs.values() if s.scored} or {"monthly"})
        ]
    )
    dates = schedule["rebalance_date"].unique().sort().to_list()
    vintages = read("curated.fundamentals_vintages")
    values = point_in_time_factor_values(
        prices,
        vintages,
        read("curated.securities"),
        dates,
        membership=membership if membership.height else None,
        share_basis=read(SHARE_BASIS_TABLE),
    )
    vintage = vintage_report(vintages, dates)
    wh = warehouse.get()
    frequencies = schedule["frequency"].unique().to_list()
    write_owned(wh, market, "factors.rebalance_dates", schedule, "frequency", frequencies)
    write_owned(wh, market, "factors.values", values, "rebalance_date", dates)
    write_owned(wh, market, "factors.fundamentals_vintage", vintage, "rebalance_date", dates)
    yield dg.MaterializeResult(
        asset_key=["factors", "values"],
        metadata=table_metadata(
            "factors.values",
            values,
            rebalance_dates=values["rebalance_date"].n_unique(),
            first_rebalance=str(values["rebalance_date"].min()),
            last_rebalance=str(values["rebalance_date"].max()),
            fundamentals_vintage=dg.MetadataValue.json(
                dict(vintage.group_by("vintage").len().sort("vintage").iter_rows())
            ),
        ),
    )
    yield dg.MaterializeResult(
        asset_key=["factors", "rebalance_dates"],
        metadata=table_metadata(
            "factors.rebalance_dates",
            schedule,
            frequencies=dg.MetadataValue.json(sorted(set(schedule["frequency"]))),
        ),
    )
    yield dg.MaterializeResult(
        asset_key=["factors", "fundamentals_vintage"],
        metadata=table_metadata("factors.fundamentals_vintage", vintage),
    )


@dg.multi_asset(
    name="factors__scores",
    specs=[
        table_spec(
            "factors.scores",
            "Composite score and rank per strategy, rebalance date and ticker.",
            GROUP,
            SCORES_READS.deps,
        ),
        table_spec(
            "factors.score_components",
            "Each score component's value and score per strategy, rebalance date and ticker.",
            GROUP,
            SCORES_READS.deps,
        ),
    ],
    pool="warehouse",
)
def factor_scores(
    context: dg.AssetExecutionContext, market: MarketDataResource, warehouse: WarehouseResource
):
    """Score every scored strategy on its own rebalance dates (score components alongside)."""
    read = SCORES_READS.reader(warehouse.read_only())
    plan = strategy_plan(market, warehouse)
    specs = {n: s for n, s in plan.runnable.items() if s.scored}
    for name, reason in plan.skipped.items():
        context.log.warning(f"strategy {name!r} skipped: {reason}")
    for name, note in plan.profile_notes.items():
        context.log.warning(f"strategy {name!r}: {note}")
    values = read("factors.values")
    if profile_columns(specs.values()):
        values = with_country(values, read("curated.securities"))
    schedule = read("factors.rebalance_dates")
    scores = [pl.DataFrame(schema=SCORES_SCHEMA)]
    components = [pl.DataFrame(schema=COMPONENTS_SCHEMA)]
    for _name, spec in specs.items():
        dates = schedule.filter(pl.col("frequency") == spec.rebalance).select("rebalance_date")
        s, c = score(values.join(dates, on="rebalance_date", how="semi"), spec)
        scores.append(s)
        components.append(c)
    all_scores = pl.concat(scores, how="vertical_relaxed")
    all_components = pl.concat(components, how="vertical_relaxed")
    wh = warehouse.get()
    write_owned(wh, market, "factors.scores", all_scores)
    write_owned(wh, market, "factors.score_components", all_components)
    eligible = (
        all_scores.group_by("strategy")
        .agg(pl.col("eligible").sum().truediv(pl.col("rebalance_date").n_unique()).round(1))
        .sort("strategy")
    )
    yield dg.MaterializeResult(
        asset_key=["factors", "scores"],
        metadata=table_metadata(
            "factors.scores",
            all_scores.sort("strategy", "rebalance_date", "rank", descending=[False, True, False]),
            strategies=dg.MetadataValue.json(sorted(specs)),
            skipped_strategies=dg.MetadataValue.json(plan.skipped),
            strategy_notes=dg.MetadataValue.json({**plan.notes, **plan.profile_notes}),
            mean_eligible_per_date=dg.MetadataValue.json(
                dict(zip(eligible["strategy"], eligible["eligible"], strict=False))
            ),
        ),
    )
    yield dg.MaterializeResult(
        asset_key=["factors", "score_components"],
        metadata=table_metadata("factors.score_components", all_components),
    )


factor_assets = [factor_values_asset, factor_scores]

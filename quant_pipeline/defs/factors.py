"""Factor assets: point-in-time factor values per rebalance date, and strategy scores."""

import dagster as dg
import polars as pl

from quant_pipeline.core.data.calendar import rebalance_dates, trading_days
from quant_pipeline.core.factors.point_in_time import point_in_time_factor_values, vintage_report
from quant_pipeline.core.factors.scoring import (
    COMPONENTS_SCHEMA,
    SCORES_SCHEMA,
    score,
    with_country,
)
from quant_pipeline.defs.metadata import table_metadata
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.defs.strategies import runnable_strategies, strategy_plan

GROUP = "factors"
KINDS = {"duckdb", "polars"}
PRICE_COLUMNS = ["ticker", "date", "close", "adj_close", "volume", "daily_return"]


@dg.asset(
    key=["factors", "values"],
    deps=[
        ["curated", "prices"],
        ["curated", "fundamentals"],
        ["curated", "securities"],
        ["curated", "membership"],
    ],
    group_name=GROUP,
    kinds=KINDS,
    pool="warehouse",
)
def factor_values_asset(
    market: MarketDataResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Every factor per rebalance date and ticker, from data available before that date."""
    wh = warehouse.get()
    specs = runnable_strategies(market, warehouse)
    prices = wh.read_table("curated.prices", columns=PRICE_COLUMNS)
    membership = wh.read_table("curated.membership")
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
    vintages = wh.read_table("curated.fundamentals_vintages")
    values = point_in_time_factor_values(
        prices,
        vintages,
        wh.read_table("curated.securities"),
        dates,
        membership=membership if membership.height else None,
    )
    vintage = vintage_report(vintages, dates)
    wh.replace_table("factors.rebalance_dates", schedule)
    wh.replace_table("factors.values", values)
    wh.replace_table("factors.fundamentals_vintage", vintage)
    return dg.MaterializeResult(
        metadata=table_metadata(
            "factors.values",
            values,
            rebalance_dates=values["rebalance_date"].n_unique(),
            first_rebalance=str(values["rebalance_date"].min()),
            last_rebalance=str(values["rebalance_date"].max()),
            fundamentals_vintage=dg.MetadataValue.json(
                dict(vintage.group_by("vintage").len().sort("vintage").iter_rows())
            ),
        )
    )


@dg.asset(
    key=["factors", "scores"],
    deps=[["factors", "values"], ["curated", "securities"]],
    group_name=GROUP,
    kinds=KINDS,
    pool="warehouse",
)
def factor_scores(
    context: dg.AssetExecutionContext, market: MarketDataResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Composite score and rank per strategy, rebalance date and ticker (components alongside)."""
    wh = warehouse.get()
    plan = strategy_plan(market, warehouse)
    specs = {n: s for n, s in plan.runnable.items() if s.scored}
    for name, reason in plan.skipped.items():
        context.log.warning(f"strategy {name!r} skipped: {reason}")
    values = wh.read_table("factors.values")
    if any(spec.universe.countries is not None for spec in specs.values()):
        values = with_country(values, wh.read_table("curated.securities"))
    schedule = wh.read_table("factors.rebalance_dates")
    scores = [pl.DataFrame(schema=SCORES_SCHEMA)]
    components = [pl.DataFrame(schema=COMPONENTS_SCHEMA)]
    for _name, spec in specs.items():
        dates = schedule.filter(pl.col("frequency") == spec.rebalance).select("rebalance_date")
        s, c = score(values.join(dates, on="rebalance_date", how="semi"), spec)
        scores.append(s)
        components.append(c)
    all_scores = pl.concat(scores, how="vertical_relaxed")
    wh.replace_table("factors.scores", all_scores)
    wh.replace_table("factors.score_components", pl.concat(components, how="vertical_relaxed"))
    eligible = (
        all_scores.group_by("strategy")
        .agg(pl.col("eligible").sum().truediv(pl.col("rebalance_date").n_unique()).round(1))
        .sort("strategy")
    )
    return dg.MaterializeResult(
        metadata=table_metadata(
            "factors.scores",
            all_scores.sort("strategy", "rebalance_date", "rank", descending=[False, True, False]),
            strategies=dg.MetadataValue.json(sorted(specs)),
            skipped_strategies=dg.MetadataValue.json(plan.skipped),
            strategy_notes=dg.MetadataValue.json(plan.notes),
            mean_eligible_per_date=dg.MetadataValue.json(
                dict(zip(eligible["strategy"], eligible["eligible"], strict=False))
            ),
        )
    )


factor_assets = [factor_values_asset, factor_scores]

"""Curated assets: validated, adjusted, point-in-time tables built from the raw layer.

New data: when fresh curated prices land, rebuild everything downstream.

The weekly refresh schedule (``weekly_refresh_job``) only fetches and curates. ``new_prices_sensor``
watches ``curated/prices``: each new materialization made by a run that did not already rebuild
the chain (the weekly refresh, a UI materialization of the curated group) requests one
``downstream_refresh_job`` run — factors, portfolios, backtests, reports and research — so the
warehouse never shows new prices next to last week's scores. Runs that built the chain themselves
(``quant-pipeline run``, ``full_pipeline_job``, the quarterly rebalance) are skipped, with the
reason shown on the tick. The run key is the triggering run's id, so one refresh never gives
two rebuilds.
"""

from dataclasses import dataclass, field
from datetime import date

import dagster as dg
import polars as pl

from quant_pipeline.core.data import curation as curate
from quant_pipeline.core.data.price_rules import SpikeRule
from quant_pipeline.core.data.share_basis import (
    METHOD_INFERRED,
    SHARE_BASIS_TABLE,
    share_basis_events,
)
from quant_pipeline.core.data.suspect_moves import (
    DEFAULT_THRESHOLD,
    SUSPECT_MOVES_TABLE,
    suspect_moves,
)
from quant_pipeline.core.data.validation import validate
from quant_pipeline.defs.metadata import table_metadata
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.defs.tables import TableReader, reads, table_spec

GROUP = "curated"
KINDS = {"duckdb", "polars", "pandera"}

PRICES_READS = reads("raw.prices", "raw.corporate_actions")
FUNDAMENTALS_READS = reads("raw.fundamentals")
SECURITIES_READS = reads("raw.securities")
MEMBERSHIP_READS = reads("raw.membership")
SHARE_BASIS_READS = reads("curated.prices", "curated.fundamentals", "raw.corporate_actions")
SUSPECT_MOVES_READS = reads("curated.prices", "raw.corporate_actions")


@dg.multi_asset(
    name="curated__prices",
    specs=[
        table_spec(
            "curated.prices",
            "Validated daily prices with split- and dividend-adjusted close and daily total "
            "return.",
            GROUP,
            PRICES_READS.deps,
            KINDS,
        ),
        table_spec(
            "curated.rejected_prices",
            "Raw price rows curation refused, each with the rule it broke.",
            GROUP,
            PRICES_READS.deps,
        ),
    ],
    pool="warehouse",
)
def curated_prices(
    context: dg.AssetExecutionContext, market: MarketDataResource, warehouse: WarehouseResource
):
    """Validate and adjust raw prices in ticker batches; keep refused rows in rejected_prices."""
    source = market.settings().source
    read = PRICES_READS.reader(warehouse.read_only())
    as_of = market.as_of_date()
    spikes = SpikeRule(market.spike_threshold, market.spike_reversal_days)
    actions = read.raw("corporate_actions", source)
    batches = curate.ticker_batches(
        read.ticker_rows("prices", source), curate.PRICE_BATCH_ROWS
    ) or [None]
    summary = PriceBatches()

    def curated_batches():
        for tickers in batches:
            raw = read.raw("prices", source, tickers=tickers)
            result = curate.curate_prices(
                raw,
                actions if tickers is None else actions.filter(pl.col("ticker").is_in(tickers)),
                as_of=as_of,
                spikes=spikes,
            )
            del raw
            prices = validate(result.prices, "curated.prices")
            summary.add(prices, result.rejected)
            yield prices

    wh = warehouse.get()
    rows = wh.replace_table_batches("curated.prices", curated_batches())
    rejected = pl.concat(summary.rejected, how="vertical_relaxed")
    wh.replace_table("curated.rejected_prices", rejected)
    if rejected.height:
        context.log.warning(
            f"{rejected.height} raw price rows rejected; see curated.rejected_prices"
        )
    yield dg.MaterializeResult(
        asset_key=["curated", "prices"],
        metadata={
            **table_metadata(
                "curated.prices",
                summary.preview,
                tickers=summary.tickers,
                first_date=str(summary.first_date),
                last_date=str(summary.last_date),
                rejected_rows=rejected.height,
                as_of=str(as_of),
                spike_threshold=spikes.threshold,
                spike_reversal_days=spikes.reversal_rows,
                ticker_batches=len(batches),
            ),
            "dagster/row_count": rows,
        },
    )
    yield dg.MaterializeResult(
        asset_key=["curated", "rejected_prices"],
        metadata=table_metadata("curated.rejected_prices", rejected),
    )


@dataclass
class PriceBatches:
    """What the curated price batches added up to: tickers, date range, the first batch's
    rows (the preview) and every batch's rejected rows."""

    tickers: int = 0
    first_date: date | None = None
    last_date: date | None = None
    preview: pl.DataFrame | None = None
    rejected: list[pl.DataFrame] = field(default_factory=list)

    def add(self, prices: pl.DataFrame, rejected: pl.DataFrame) -> None:
        if self.preview is None:
            self.preview = prices.head(10)
        self.rejected.append(rejected)
        if prices.is_empty():
            return
        self.tickers += prices["ticker"].n_unique()
        low, high = prices["date"].min(), prices["date"].max()
        self.first_date = low if self.first_date is None else min(self.first_date, low)
        self.last_date = high if self.last_date is None else max(self.last_date, high)


class FundamentalsTiming(dg.Config):
    """When a fundamental becomes usable if the source gives no report date."""

    quarter_lag_days: int = 45
    annual_lag_days: int = 90


@dg.multi_asset(
    name="curated__fundamentals",
    specs=[
        table_spec(
            "curated.fundamentals",
            "Wide fundamentals per ticker and period, with available_at and trailing-12-month "
            "values.",
            GROUP,
            FUNDAMENTALS_READS.deps,
            KINDS,
        ),
        table_spec(
            "curated.fundamentals_vintages",
            "Every ingested version of every fundamentals period, with when it became known.",
            GROUP,
            FUNDAMENTALS_READS.deps,
        ),
    ],
    pool="warehouse",
)
def curated_fundamentals(
    config: FundamentalsTiming, market: MarketDataResource, warehouse: WarehouseResource
):
    """Wide point-in-time fundamentals (latest version) and every vintage of every period."""
    source = market.settings().source
    raw = FUNDAMENTALS_READS.reader(warehouse.read_only()).raw("fundamentals", source)
    lags = {"quarter_lag_days": config.quarter_lag_days, "annual_lag_days": config.annual_lag_days}
    wide = validate(curate.curate_fundamentals(raw, **lags), "curated.fundamentals")
    # Every ingested version of every period: factors use the one known at each rebalance date.
    vintages = curate.fundamentals_vintages(raw, **lags)
    wh = warehouse.get()
    wh.replace_table("curated.fundamentals", wide)
    wh.replace_table("curated.fundamentals_vintages", vintages)
    reported = wide["report_date"].is_not_null().sum() if wide.height else 0
    yield dg.MaterializeResult(
        asset_key=["curated", "fundamentals"],
        metadata=table_metadata(
            "curated.fundamentals",
            wide,
            tickers=wide["ticker"].n_unique(),
            rows_with_report_date=int(reported),
            restatement_versions=int(vintages.height - wide.height),
            quarter_lag_days=config.quarter_lag_days,
            annual_lag_days=config.annual_lag_days,
        ),
    )
    yield dg.MaterializeResult(
        asset_key=["curated", "fundamentals_vintages"],
        metadata=table_metadata("curated.fundamentals_vintages", vintages),
    )


@dg.asset(
    key=["curated", "securities"],
    deps=SECURITIES_READS.deps,
    group_name=GROUP,
    kinds=KINDS,
    pool="warehouse",
)
def curated_securities(
    market: MarketDataResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """The latest profile of every security (name, sector, industry, shares, market cap)."""
    read = SECURITIES_READS.reader(warehouse.read_only())
    securities = validate(
        curate.curate_securities(read.raw("securities", market.settings().source)),
        "curated.securities",
    )
    wh = warehouse.get()
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
    deps=MEMBERSHIP_READS.deps,
    group_name=GROUP,
    kinds=KINDS,
    pool="warehouse",
)
def curated_membership(
    market: MarketDataResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Universe membership intervals (who was in the universe on which dates)."""
    read = MEMBERSHIP_READS.reader(warehouse.read_only())
    membership = validate(
        curate.curate_membership(read.raw("membership", market.settings().source)),
        "curated.membership",
    )
    wh = warehouse.get()
    wh.replace_table("curated.membership", membership)
    return dg.MaterializeResult(metadata=table_metadata("curated.membership", membership))


def _actions(read: TableReader, source: str) -> pl.DataFrame | None:
    """curated corporate actions of ``source``, None when it has none."""
    raw = read.raw("corporate_actions", source)
    return curate.curate_actions(raw) if raw.height else None


@dg.asset(
    key=["curated", "share_basis_events"],
    deps=SHARE_BASIS_READS.deps,
    group_name=GROUP,
    kinds={"duckdb", "polars"},
    pool="warehouse",
)
def curated_share_basis_events(
    market: MarketDataResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Splits that change share counts (on file or inferred from share series), with evidence."""
    read = SHARE_BASIS_READS.reader(warehouse.read_only())
    events = share_basis_events(
        _actions(read, market.settings().source),
        read("curated.prices", columns=["ticker", "date", "close"]),
        read("curated.fundamentals"),
    )
    warehouse.get().replace_table(SHARE_BASIS_TABLE, events)
    return dg.MaterializeResult(
        metadata=table_metadata(
            SHARE_BASIS_TABLE,
            events,
            inferred=int((events["method"] == METHOD_INFERRED).sum()),
            by_price_basis=dg.MetadataValue.json(
                dict(events.group_by("price_basis").len().sort("price_basis").iter_rows())
            ),
        )
    )


class SuspectMovesConfig(dg.Config):
    """``threshold``: the absolute one-day return (0.4 = 40%) beyond which a move with no
    corporate action on file is listed."""

    threshold: float = DEFAULT_THRESHOLD


@dg.asset(
    key=["curated", "suspect_moves"],
    deps=SUSPECT_MOVES_READS.deps,
    group_name=GROUP,
    kinds={"duckdb", "polars"},
    pool="warehouse",
)
def curated_suspect_moves(
    config: SuspectMovesConfig, market: MarketDataResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """One-day moves beyond a threshold with no corporate action on file, taken as returns."""
    read = SUSPECT_MOVES_READS.reader(warehouse.read_only())
    moves = suspect_moves(
        read("curated.prices", columns=["ticker", "date", "close", "daily_return"]),
        _actions(read, market.settings().source),
        config.threshold,
    )
    warehouse.get().replace_table(SUSPECT_MOVES_TABLE, moves)
    if moves.height:
        dg.get_dagster_logger().warning(
            f"{moves.height} one-day moves of {config.threshold:.0%} or more have no corporate "
            f"action on file; see {SUSPECT_MOVES_TABLE}"
        )
    return dg.MaterializeResult(
        metadata=table_metadata(SUSPECT_MOVES_TABLE, moves, threshold=config.threshold)
    )


curated_assets = [
    curated_prices,
    curated_fundamentals,
    curated_securities,
    curated_membership,
    curated_share_basis_events,
    curated_suspect_moves,
]

WATCHED = dg.AssetKey(["curated", "prices"])
# a run that materialized this asset rebuilt the chain itself
CHAIN_MARKER = dg.AssetKey(["factors", "values"])
CHAIN_STEP = "factors__values"
CHAIN_JOBS = ("full_pipeline_job", "quarterly_rebalance_job")

downstream_refresh_job = dg.define_asset_job(
    "downstream_refresh_job",
    selection=dg.AssetSelection.all()
    - dg.AssetSelection.groups("ingestion", "curated", "orders", "research_guards"),
    description="Factors, portfolios, backtests, reports and research from the curated tables.",
)


def rebuilt_the_chain(instance: dg.DagsterInstance, run: dg.DagsterRun | None) -> bool:
    """True when ``run`` (the one that materialized curated prices) also builds the factors:
    its asset selection, else the steps of its execution plan, include ``factors/values``."""
    if run is None:
        return False
    if run.asset_selection:  # empty or None: the whole job, see its plan
        return CHAIN_MARKER in run.asset_selection
    snapshot_id = run.execution_plan_snapshot_id
    plan = instance.get_execution_plan_snapshot(snapshot_id) if snapshot_id else None
    if plan is None:
        return run.job_name in CHAIN_JOBS
    steps = plan.step_keys_to_execute or [step.key for step in plan.steps]
    return CHAIN_STEP in steps


@dg.asset_sensor(
    asset_key=WATCHED,
    job=downstream_refresh_job,
    name="new_prices_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="New curated prices from a refresh: rebuild factors, portfolios and backtests.",
)
def new_prices_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    run_id = asset_event.run_id
    run = context.instance.get_run_by_id(run_id) if run_id else None
    if rebuilt_the_chain(context.instance, run):
        return dg.SkipReason(
            f"curated/prices came from run {run_id} ({run.job_name}), which rebuilt the chain"
        )
    return dg.RunRequest(
        run_key=f"new_prices:{run_id or asset_event.timestamp}",
        tags={"quant_pipeline/trigger": f"curated/prices from run {run_id or 'outside a run'}"},
    )


curated_jobs = [downstream_refresh_job]
curated_sensors = [new_prices_sensor]

"""Ingestion assets: what the configured source returns, written to the raw tables.

A refresh is incremental and safe:

- prices are asked from each known ticker's last stored date minus ``price_overlap_days``; tickers
  never seen get their full history. When the re-fetched overlap differs from what is stored
  (the source restated its adjusted history after a split or dividend, or corrected a price), the
  ticker's full history is fetched again so stored adjusted prices never mix two bases;
- prices, corporate actions and membership are upserted on their key, fundamentals and securities
  appended as vintages (see ``Warehouse.write_raw``): re-running a refresh adds nothing;
- a failed fetch writes nothing but the ingest log: raw tables keep every row they had. The
  failure names the failed tickers (message and ``failed_tickers`` metadata).

``weekly_refresh_schedule`` runs ``weekly_refresh_job`` (ingestion and curated groups) every
Saturday 07:00 New York time; ``new_prices_sensor`` (curated) rebuilds what lies downstream.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl

from quant_pipeline.core.data.price_rules import SpikeRule, guard_replacements
from quant_pipeline.core.data.schema import RAW_INGEST_LOG
from quant_pipeline.defs.metadata import table_metadata
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.sources.base import FetchRequest, Source, SourceError
from quant_pipeline.storage.warehouse import Warehouse, WriteStats

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
# Corporate actions come from the same responses as prices (yahoo): fetch prices first so the
# run's source reuses them.
_DEPS = {"corporate_actions": [["raw", "prices"]]}
# Relative difference above which a re-fetched overlap price counts as restated.
_RESTATED_TOLERANCE = 1e-6
_MAX_LISTED = 200
_WHOLE_HISTORY_SOURCES = frozenset({"files"})
# Stored days read before the incoming window, so the spike rule sees each ticker's last rows.
_GUARD_CONTEXT_DAYS = 30
REFUSED_TABLE = "raw.refused_replacements"
RESTATEMENTS_TABLE = "raw.price_restatements"


def price_request(warehouse: Warehouse, source_name: str, overlap_days: int) -> FetchRequest:
    """Incremental prices: each known ticker from its last stored date minus an overlap.

    Tickers never seen get their full history (they are absent from ``per_ticker_start``).
    The ``files`` source is asked for everything: it reads whole files anyway, and the refresh
    then checks every stored row against the file (restatements and corruption anywhere in
    the history are found, not only in the last days).
    """
    if source_name in _WHOLE_HISTORY_SOURCES:
        return FetchRequest()
    last = warehouse.last_dates("prices", source_name)
    starts = {
        ticker: last_date - timedelta(days=overlap_days)
        for ticker, last_date in zip(last["ticker"], last["last_date"], strict=True)
    }
    return FetchRequest(per_ticker_start=starts)


def restated_tickers(stored: pl.DataFrame, fetched: pl.DataFrame) -> list[str]:
    """Tickers whose re-fetched close or adj_close differs from the stored one on a common date.

    Both frames have ticker, date, close, adj_close (raw.prices). Null equals null; values differ
    when ``|a - b| > 1e-6 * max(|a|, |b|)``. A split or dividend makes Yahoo restate every
    earlier adjusted close, so a changed overlap means the stored history is on an older basis.
    """
    common = stored.select("ticker", "date", "close", "adj_close").join(
        fetched.select("ticker", "date", "close", "adj_close"), on=["ticker", "date"], how="inner"
    )

    def differs(col: str) -> pl.Expr:
        a, b = pl.col(col), pl.col(f"{col}_right")
        scale = pl.max_horizontal(a.abs(), b.abs())
        both = ((a - b).abs() > _RESTATED_TOLERANCE * scale).fill_null(False)
        return both | (a.is_null() != b.is_null())

    changed = common.filter(differs("close") | differs("adj_close"))
    return sorted(changed["ticker"].unique().to_list())


def _fetch_prices(
    context: dg.AssetExecutionContext,
    source: Source,
    warehouse: Warehouse,
    source_name: str,
    overlap_days: int,
) -> tuple[pl.DataFrame, list[str]]:
    """New and overlap prices, with the full history of tickers whose overlap was restated."""
    request = price_request(warehouse, source_name, overlap_days)
    frame = source.prices(request)
    if not request.per_ticker_start or frame.is_empty():
        return frame, []
    # the stored rows of each fetched ticker from its first fetched day: the overlap compared
    firsts = frame.group_by("ticker").agg(since=pl.col("date").min())
    restated = restated_tickers(warehouse.read_raw_from("prices", source_name, firsts), frame)
    if not restated:
        return frame, []
    context.log.info(
        f"{len(restated)} tickers restated their overlap (split, dividend or correction); "
        f"fetching their full history: {restated[:20]}"
    )
    try:
        full = source.prices(FetchRequest(tickers=tuple(restated)))
    except SourceError as exc:
        # The windowed rows are still right as traded; the adjusted basis stays mixed until the
        # next refresh succeeds.
        context.log.warning(f"full history of restated tickers failed, kept the window: {exc}")
        return frame, restated
    refetched = full["ticker"].unique().to_list()
    frame = pl.concat([frame.filter(~pl.col("ticker").is_in(refetched)), full], how="vertical")
    return frame, restated


def guard_prices(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    frame: pl.DataFrame,
    spikes: SpikeRule,
    run_id: str | None,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The fetched prices that may be written; refused replacements and restatements recorded.

    Compares ``frame`` with the stored rows from each ticker's first incoming date (minus a
    context window) on: an incoming row never replaces a stored row it would make worse (see
    ``core.data.price_rules.guard_replacements``). Refusals go to ``raw.refused_replacements``,
    changed values of accepted rows to ``raw.price_restatements`` (old and new value), both
    tagged with the run id. Returns (accepted, refused, restatements)."""
    if frame.is_empty():
        return frame, pl.DataFrame(), pl.DataFrame()
    source_name = frame["source"][0]
    # each ticker's stored rows from its own first incoming date (less the context): a
    # refresh holding a few full histories reads those, not every ticker's whole history
    starts = frame.group_by("ticker").agg(
        since=pl.col("date").min() - timedelta(days=_GUARD_CONTEXT_DAYS)
    )
    stored = warehouse.read_raw_from("prices", source_name, starts)
    result = guard_replacements(stored, frame, spikes, datetime.now(UTC))
    tag = {"run_id": pl.lit(run_id or "", pl.String)}
    if result.refused.height:
        warehouse.append_rows(REFUSED_TABLE, result.refused.with_columns(**tag))
        examples = [
            f"{r['ticker']} {r['date']}: {r['reason']}"
            for r in result.refused.head(10).iter_rows(named=True)
        ]
        context.log.warning(
            f"refused {result.refused.height} incoming price rows that would replace valid "
            f"stored rows (kept the stored rows; see {REFUSED_TABLE}): " + "; ".join(examples)
        )
    if result.restatements.height:
        warehouse.append_rows(RESTATEMENTS_TABLE, result.restatements.with_columns(**tag))
        context.log.info(
            f"{result.restatements.height} stored price values restated by the source "
            f"(old and new values in {RESTATEMENTS_TABLE})"
        )
    return result.accepted, result.refused, result.restatements


def _refusal_log(run_id: str | None, refused: pl.DataFrame, started: datetime) -> pl.DataFrame:
    """One ingest log row per ticker with refused replacements (status 'refused')."""
    per = refused.group_by("ticker").agg(
        rows=pl.len().cast(pl.Int64), error=pl.col("reason").first()
    )
    return per.select(
        run_id=pl.lit(run_id or ""),
        dataset=pl.lit("prices"),
        ticker="ticker",
        rows="rows",
        status=pl.lit("refused"),
        error=pl.format("{} rows refused (stored rows kept), e.g. {}", "rows", "error"),
        attempts=pl.lit(1, pl.Int64),
        started_at=pl.lit(started),
        finished_at=pl.lit(datetime.now(UTC)),
    ).cast(RAW_INGEST_LOG)  # type: ignore[arg-type]


def _summary_log(
    run_id: str | None, dataset: str, rows: int, error: str | None, started: datetime
) -> pl.DataFrame:
    """One whole-dataset ingest log row (ticker null) for sources without a per-ticker log."""
    status = "error" if error else ("ok" if rows else "empty")
    return pl.DataFrame(
        [
            {
                "run_id": run_id or "",
                "dataset": dataset,
                "ticker": None,
                "rows": rows,
                "status": status,
                "error": error,
                "attempts": 1,
                "started_at": started,
                "finished_at": datetime.now(UTC),
            }
        ],
        schema=RAW_INGEST_LOG,
    )


def _logged(
    market: MarketDataResource, dataset: str, rows: int, error: str | None, started: datetime
) -> pl.DataFrame:
    """The ingest log rows of one fetch: the source's per-ticker rows when it keeps a log (plus
    a whole-dataset error row when the step crashed), else one whole-dataset row."""
    log = market.unlogged_ingest_rows()
    summary = _summary_log(market.run_id, dataset, rows, error, started)
    if log is None:
        return summary
    if error is not None and error.startswith("step crashed"):
        return pl.concat([log.cast(RAW_INGEST_LOG), summary], how="vertical")  # type: ignore[arg-type]
    return log


def _failed(log: pl.DataFrame | None) -> list[str]:
    if log is None or log.is_empty():
        return []
    bad = log.filter((pl.col("status") != "ok") & pl.col("ticker").is_not_null())
    return sorted(bad["ticker"].unique().to_list())


def _guard(
    context: dg.AssetExecutionContext,
    dataset: str,
    frame: pl.DataFrame,
    market: MarketDataResource,
    warehouse: Warehouse,
    started: datetime,
) -> tuple[pl.DataFrame, dict[str, object]]:
    """Prices pass :func:`guard_prices` (refusals also go to the ingest log); other datasets
    are written as fetched. Returns the frame to write and metadata."""
    if dataset != "prices":
        return frame, {}
    spikes = SpikeRule(market.spike_threshold, market.spike_reversal_days)
    frame, refused, restatements = guard_prices(context, warehouse, frame, spikes, market.run_id)
    if refused.height:
        warehouse.log_ingest(_refusal_log(market.run_id, refused, started))
    return frame, {"refused_rows": refused.height, "restated_values": restatements.height}


def _write(
    warehouse: Warehouse, dataset: str, frame: pl.DataFrame, run_id: str | None, started: datetime
) -> WriteStats:
    """``write_raw``; a failed write is recorded in the ingest log as an error, then raised."""
    try:
        return warehouse.write_raw(dataset, frame)
    except Exception as exc:
        error = f"write to raw.{dataset} failed: {type(exc).__name__}: {exc}"
        warehouse.log_ingest(_summary_log(run_id, dataset, 0, error, started))
        raise


def _not_provided(source: Source, dataset: str) -> str | None:
    """Why ``source`` has no ``dataset`` by design (a files folder without that file), or None.

    Only prices are indispensable: a source without fundamentals or securities runs the
    strategies that need neither (see core/strategies/requirements.py)."""
    provides = getattr(source, "provides", None)
    if dataset == "prices" or provides is None or provides(dataset):
        return None
    message = f"source {source.name!r} has no {dataset} (no {dataset} file in its folder)"
    if dataset in _REQUIRED:
        message += f": the strategies that need {dataset} are skipped"
    return message


def _write_rejected(
    context: dg.AssetExecutionContext, source: Source, dataset: str, warehouse: Warehouse
) -> dict[str, object]:
    """Write the rows and files the source set aside to ``raw.rejected_rows`` (this dataset's
    rows replaced) and return the metadata entries that count them per reason."""
    reader = getattr(source, "rejected_rows", None)
    if reader is None:
        return {}
    rejected = reader(dataset).with_columns(
        pl.lit(source.name).alias("source"), pl.lit(datetime.now(UTC)).alias("ingested_at")
    )
    warehouse.replace_partition("raw.rejected_rows", rejected, "dataset", [dataset])
    if rejected.is_empty():
        return {"rows_set_aside": 0}
    counts = rejected.group_by("rule").len().sort("len", "rule", descending=[True, False])
    by_reason = {r: n for r, n in counts.iter_rows()}
    context.log.warning(
        f"{rejected.height} {dataset} rows or files set aside (see raw.rejected_rows): {by_reason}"
    )
    return {
        "rows_set_aside": rejected.height,
        "set_aside_by_reason": dg.MetadataValue.json(by_reason),
        "files_set_aside": dg.MetadataValue.json(
            rejected.filter(pl.col("line").is_null())["file"].head(_MAX_LISTED).to_list()
        ),
    }


def ingest(
    context: dg.AssetExecutionContext,
    dataset: str,
    market: MarketDataResource,
    warehouse_resource: WarehouseResource,
) -> dg.MaterializeResult:
    """Fetch ``dataset`` from the run's source and write it to ``raw.<dataset>``."""
    settings = market.settings()
    source = market.get_source()
    warehouse = warehouse_resource.get()
    started = datetime.now(UTC)
    restated: list[str] = []
    error: str | None = None
    frame = pl.DataFrame()
    try:
        if dataset == "prices":
            frame, restated = _fetch_prices(
                context, source, warehouse, settings.source, market.price_overlap_days
            )
        else:
            frame = getattr(source, dataset)(FetchRequest())
    except SourceError as exc:
        error = str(exc)
    except Exception as exc:  # logged as what it was (not "empty"), then re-raised
        error = f"step crashed: {type(exc).__name__}: {exc}"
        raise
    finally:
        log = _logged(market, dataset, frame.height, error, started)
        if log.height:
            warehouse.log_ingest(log)
    failed = _failed(log)
    failed_meta = {"failed_tickers": dg.MetadataValue.json(failed[:_MAX_LISTED])}
    absent = _not_provided(source, dataset)
    if error is None and frame.is_empty() and dataset in _REQUIRED and absent is None:
        error = f"source {settings.source!r} returned no {dataset}"
    if absent is not None and dataset in _REQUIRED:
        context.log.warning(absent)
    if error is not None:
        # Nothing is written: the raw table keeps every row it had.
        raise dg.Failure(
            description=f"{error}\nraw.{dataset} is unchanged.",
            metadata={**failed_meta, "failed_count": len(failed)},
        )
    frame, guarded = _guard(context, dataset, frame, market, warehouse, started)
    stats = _write(warehouse, dataset, frame, market.run_id, started)
    context.log.info(f"raw.{dataset}: {stats}")
    set_aside = _write_rejected(context, source, dataset, warehouse)
    if failed:
        context.log.warning(f"{len(failed)} tickers failed: {failed[:_MAX_LISTED]}")
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
            failed_count=len(failed),
            **guarded,
            **failed_meta,
            **({"not_provided": absent} if absent is not None else {}),
            **set_aside,
            **(
                {"restated_tickers": dg.MetadataValue.json(restated[:_MAX_LISTED])}
                if dataset == "prices"
                else {}
            ),
        )
    )


def _raw_asset(dataset: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=["raw", dataset],
        deps=_DEPS.get(dataset, []),
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

refresh_job = dg.define_asset_job(
    "weekly_refresh_job",
    selection=dg.AssetSelection.groups(GROUP, "curated"),
    description="Fetch what is new from the configured source and rebuild the curated tables.",
)

weekly_refresh_schedule = dg.ScheduleDefinition(
    name="weekly_refresh_schedule",
    job=refresh_job,
    cron_schedule="0 7 * * 6",  # Saturday 07:00, after Friday's close and vendor corrections
    execution_timezone="America/New_York",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Weekly data refresh, Saturday morning New York time.",
)

ingestion_jobs = [refresh_job]
ingestion_schedules = [weekly_refresh_schedule]

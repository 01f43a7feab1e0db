"""Research integrity: the blocking lookahead audit of factors.scores, and backtest bias labels."""

from datetime import UTC, datetime

import dagster as dg
import polars as pl

from quant_pipeline.core.backtest import lookahead_audit as audit_module
from quant_pipeline.core.backtest.bias_labels import bias_labels, data_labels
from quant_pipeline.core.backtest.lookahead_audit import (
    AUDITED_KEYS_SCHEMA,
    DEFAULT_SAMPLE_DATES,
    audit_lookahead,
    sample_dates,
)
from quant_pipeline.core.data.fingerprints import KEPT
from quant_pipeline.core.data.schema import CLOSE_PRICE_COLUMNS
from quant_pipeline.core.data.share_basis import SHARE_BASIS_TABLE
from quant_pipeline.core.data.suspect_moves import (
    HELD_THROUGH_SCHEMA,
    SUSPECT_MOVES_TABLE,
    held_through,
)
from quant_pipeline.core.strategies.requirements import StrategyPlan, plan_labels
from quant_pipeline.core.strategies.spec import StrategySpec
from quant_pipeline.defs.incremental import code_version, incremental_enabled
from quant_pipeline.defs.metadata import markdown_table
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.defs.strategies import is_restricted, runnable_strategies
from quant_pipeline.defs.tables import TableReader, reads

AUDIT_READS = reads(
    "factors.values",
    "factors.scores",
    "factors.values_inputs",
    "factors.scores_inputs",
    "curated.prices",
    "curated.fundamentals_vintages",
    "curated.securities",
    "curated.membership",
    SHARE_BASIS_TABLE,
)
# Read by bias_labels_table on behalf of the backtest step (part of that step's reads).
BIAS_LABEL_READS = (
    "factors.values",
    "factors.rebalance_dates",
    "factors.fundamentals_vintage",
    "curated.fundamentals",
    SHARE_BASIS_TABLE,
    SUSPECT_MOVES_TABLE,
)


# What the audit compared: the ``audit_record`` metadata of the check's evaluation (rows of
# this schema). The next evaluation reads the last one from the Dagster instance: a check only
# reads the warehouse.
AUDIT_RECORD = "audit_record"
AUDIT_RECORD_SCHEMA: dict[str, pl.DataType] = {
    **AUDITED_KEYS_SCHEMA,  # the key, rows compared, mismatches
    "digest": pl.String(),
    "audited_at": pl.String(),  # ISO 8601, UTC
}
RECORD_KEY = ["table", "strategy", "rebalance_date"]
AUDITED = "audited: inputs new or changed since the last passing audit"


def _row_hashes(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Per ``keys``: the row count and an order-independent hash of the stored rows."""
    return (
        frame.with_columns(_h=frame.hash_rows())
        .group_by(keys)
        .agg(pl.len().alias("_n"), pl.col("_h").sum())
        .select(*keys, pl.format("{}:{}", "_n", "_h").alias("_rows"))
    )


def audit_digests(
    read: TableReader, dates: list, values: pl.DataFrame, scores: pl.DataFrame
) -> pl.DataFrame:
    """The keys the audit can compare on ``dates`` (the stored ``values`` and ``scores`` of
    those dates) with the digest of what they are: the audit's code version, the input digest
    they were computed from (``factors.values_inputs`` per date, ``factors.scores_inputs`` per
    strategy and date) and a hash of the stored rows themselves, so a row changed in place
    (by hand, by a faulty write) is audited again."""
    code = code_version(audit_module)
    if not (read.has_table("factors.values_inputs") and read.has_table("factors.scores_inputs")):
        return pl.DataFrame(schema={c: AUDIT_RECORD_SCHEMA[c] for c in (*RECORD_KEY, "digest")})
    date_rows = _row_hashes(values, ["rebalance_date"])
    value_keys = (
        read("factors.values_inputs", filters={"rebalance_date": dates})
        .join(date_rows, on="rebalance_date", how="inner")
        .select(
            pl.lit("factors.values").alias("table"),
            pl.lit(None, dtype=pl.String).alias("strategy"),
            "rebalance_date",
            "digest",
            "_rows",
        )
    )
    score_keys = (
        read("factors.scores_inputs", filters={"rebalance_date": dates})
        .join(
            _row_hashes(scores, ["strategy", "rebalance_date"]), on=["strategy", "rebalance_date"]
        )
        .select(
            pl.lit("factors.scores").alias("table"), "strategy", "rebalance_date", "digest", "_rows"
        )
    )
    keys = pl.concat([value_keys, score_keys], how="vertical_relaxed")
    return keys.select(
        *[pl.col(c).cast(AUDIT_RECORD_SCHEMA[c]) for c in RECORD_KEY],
        pl.concat_str(pl.lit(code), "digest", "_rows", separator="|").alias("digest"),
    )


def last_record(instance: dg.DagsterInstance | None) -> pl.DataFrame:
    """The ``audit_record`` of this check's last completed evaluation in ``instance`` (empty
    when there is none: a new instance, an ephemeral one, a record from older code)."""
    empty = pl.DataFrame(schema=AUDIT_RECORD_SCHEMA)
    if instance is None:
        return empty
    check = dg.AssetCheckKey(
        dg.AssetKey(["factors", "scores"]), "scores_match_point_in_time_recomputation"
    )
    # newest first; the running evaluation (and one that crashed) is only PLANNED
    history = instance.event_log_storage.get_asset_check_execution_history(check, limit=5)
    done = [
        r
        for r in history
        if r.status.value in ("SUCCEEDED", "FAILED") and r.event and r.event.dagster_event
    ]
    if not done:
        return empty
    entry = done[0].event.dagster_event.event_specific_data.metadata.get(AUDIT_RECORD)
    rows = getattr(entry, "value", None)
    if not isinstance(rows, list) or not rows:
        return empty
    try:
        frame = pl.DataFrame(rows, orient="row", schema=list(AUDIT_RECORD_SCHEMA))
        return frame.select(
            pl.col(c).str.to_date() if c == "rebalance_date" else pl.col(c)
            for c in AUDIT_RECORD_SCHEMA
        ).cast(AUDIT_RECORD_SCHEMA)
    except (pl.exceptions.PolarsError, TypeError, ValueError):  # another shape: audit anew
        return empty


def passed_before(record: pl.DataFrame, current: pl.DataFrame) -> pl.DataFrame:
    """The rows of ``record`` (an earlier audit's) that compared a key of ``current`` with no
    mismatch on the same digest."""
    passed = record.filter(pl.col("mismatches") == 0)
    return passed.join(current, on=[*RECORD_KEY, "digest"], how="semi", nulls_equal=True)


def audit_record(
    current: pl.DataFrame, kept: pl.DataFrame, audited: pl.DataFrame, at: str
) -> pl.DataFrame:
    """The record after an audit: the kept keys' rows as they were, the audited keys' new rows
    (their current digest, counts, ``at``)."""
    fresh = current.join(audited, on=RECORD_KEY, how="inner", nulls_equal=True).with_columns(
        audited_at=pl.lit(at, dtype=AUDIT_RECORD_SCHEMA["audited_at"])
    )
    columns = [pl.col(c).cast(t) for c, t in AUDIT_RECORD_SCHEMA.items()]
    return pl.concat([kept.select(columns), fresh.select(columns)]).sort(
        RECORD_KEY, nulls_last=True
    )


class LookaheadAuditConfig(dg.Config):
    """How many past rebalance dates the audit recomputes (spread evenly, deterministic)."""

    sample_dates: int = DEFAULT_SAMPLE_DATES


@dg.asset_check(
    asset=dg.AssetKey(["factors", "scores"]),
    blocking=True,
    additional_deps=[k for k in AUDIT_READS.deps if k != dg.AssetKey(["factors", "scores"])],
)
def scores_match_point_in_time_recomputation(
    context: dg.AssetCheckExecutionContext,
    config: LookaheadAuditConfig,
    market: MarketDataResource,
    warehouse: WarehouseResource,
) -> dg.AssetCheckResult:
    """Factor values and scores of sampled dates equal a recomputation from data known then.

    A key (a date's values, a strategy's scores on a date) that the last evaluation compared
    with no mismatch, on the same input digest and the same stored rows, is kept: its values
    are not recomputed and stand in for the recomputation of that date's other scores."""
    read = AUDIT_READS.reader(warehouse.read_only())
    specs = runnable_strategies(market, warehouse)
    dates = _audit_dates(read, market, specs, config.sample_dates)
    # only the sampled dates' stored rows are compared: read no others
    values = read("factors.values", filters={"rebalance_date": dates})
    scores = read("factors.scores", filters={"rebalance_date": dates}).filter(
        pl.col("strategy").is_in(list(specs))
    )
    current = audit_digests(read, dates, values, scores)
    kept = (
        passed_before(last_record(context.instance), current)
        if incremental_enabled(market)
        else pl.DataFrame(schema=AUDIT_RECORD_SCHEMA)
    )
    kept_values = kept.filter(pl.col("table") == "factors.values")["rebalance_date"].to_list()
    kept_scores = kept.filter(pl.col("table") == "factors.scores").select(
        "strategy", "rebalance_date"
    )
    needs_values = set(dates) - set(kept_values)
    membership = read("curated.membership")
    result = audit_lookahead(
        values,
        scores,
        # the prices only when some date's values are recomputed
        read("curated.prices", columns=CLOSE_PRICE_COLUMNS)
        if needs_values
        else pl.DataFrame(schema={c: pl.Null for c in CLOSE_PRICE_COLUMNS}),
        read("curated.fundamentals_vintages"),
        read("curated.securities"),
        membership if membership.height else None,
        specs,
        dates,
        share_basis=read(SHARE_BASIS_TABLE),
        kept_values=kept_values,
        kept_scores=kept_scores.rows(),
    )
    record = audit_record(current, kept, result.audited, datetime.now(UTC).isoformat())
    message = result.message()
    if kept.height:
        message += (
            f"; {kept.height} key(s) kept: an earlier audit passed on the same inputs "
            f"({len(kept_values)} date(s) of factors.values, {kept_scores.height} strategy-"
            "date(s) of factors.scores)"
        )
    return dg.AssetCheckResult(
        passed=result.passed,
        description=message,
        metadata=_audit_metadata(result, kept, record, message),
    )


def _audit_dates(read: TableReader, market: MarketDataResource, specs: dict, n: int) -> list:
    """The ``n`` sampled rebalance dates (a restricted run: among the dates it scored)."""
    value_dates = read("factors.values", columns=["rebalance_date"])["rebalance_date"].unique()
    if is_restricted(market):  # audit what this run wrote, not others' dates
        scored = read("factors.scores", columns=["strategy", "rebalance_date"]).filter(
            pl.col("strategy").is_in(list(specs))
        )
        if scored.height:
            wrote = scored["rebalance_date"].unique().to_list()
            value_dates = value_dates.filter(value_dates.is_in(wrote))
    return sample_dates(value_dates.to_list(), n)


def _audit_metadata(result, kept: pl.DataFrame, record: pl.DataFrame, message: str) -> dict:
    """The check's metadata: what was compared, the first mismatches, keys per reason and the
    record the next evaluation reads."""
    reasons = {KEPT: kept.height, AUDITED: result.audited.height}
    rows = record.with_columns(pl.col("rebalance_date").cast(pl.String)).rows()
    return {
        "dates_checked": dg.MetadataValue.json([str(d) for d in result.dates]),
        "rows_compared": result.rows_compared,
        "mismatches": result.mismatches.height,
        "first_mismatches": dg.MetadataValue.md(markdown_table(result.mismatches)),
        "incremental": dg.MetadataValue.json({k: v for k, v in reasons.items() if v}),
        "message": message,
        AUDIT_RECORD: dg.MetadataValue.json([list(r) for r in rows]),
    }


def bias_labels_table(
    read: TableReader,
    source: str,
    specs: dict[str, StrategySpec],
    prices: pl.DataFrame,
    membership: pl.DataFrame,
    delisting_return: float | None,
    trading_models: dict[str, str] | None = None,
    trades: pl.DataFrame | None = None,
    plan: StrategyPlan | None = None,
) -> pl.DataFrame:
    """Every strategy's bias labels (the rows of ``backtest.labels``) from data ``source``.

    ``trading_models`` (strategy → description of the simulated trading model: capital, share
    rounding, commissions, slippage) adds a ``trading_model`` label per strategy. ``trades``
    (the step's backtest.trades rows) gives the ``suspect_moves`` label the positions held
    through a suspect move; every strategy also gets its ``share_basis`` label. ``plan`` adds
    a ``skipped`` label (the reason) per strategy left out for missing inputs and a
    ``sector_cap`` label per strategy whose cap was dropped.

    Called by the backtest asset with the frames it already holds (curated.prices with ticker and
    date, curated.membership) and its reader, through which it reads ``BIAS_LABEL_READS``.
    """
    values = read(
        "factors.values", columns=["rebalance_date", "ticker", "in_universe", "shares_from_profile"]
    )
    schedule = read("factors.rebalance_dates")
    vintage = read("factors.fundamentals_vintage")
    fundamentals = read(
        "curated.fundamentals", columns=["period_type", "period_end", "report_date", "available_at"]
    )
    delisted = 0
    if prices.height:  # tickers whose last price is before the market's last day
        # lazily: the engine groups 14M rows ~4x faster than the eager group_by
        delisted = (
            prices.lazy()
            .group_by("ticker")
            .agg(pl.col("date").max())
            .filter(pl.col("date") < prices["date"].max())
            .select(pl.len())
            .collect()
            .item()
        )
    rows = []
    for name, spec in specs.items():
        dates = schedule.filter(pl.col("frequency") == spec.rebalance).select("rebalance_date")
        rows.append(
            bias_labels(
                name,
                source=source,
                cost_bps=spec.costs.bps,
                delisting_return=delisting_return,
                values=values.join(dates, on="rebalance_date", how="semi"),
                membership=membership if membership.height else None,
                fundamentals=fundamentals,
                vintage_report=vintage.join(dates, on="rebalance_date", how="semi"),
                delisted_tickers=delisted,
            )
        )
    if trading_models:
        rows.append(
            pl.DataFrame(
                {
                    "strategy": list(trading_models),
                    "label": ["trading_model"] * len(trading_models),
                    "value": list(trading_models.values()),
                },
                schema=rows[0].schema if rows else None,
            )
        )
    moves = read(SUSPECT_MOVES_TABLE)
    held = pl.DataFrame(schema=HELD_THROUGH_SCHEMA)
    if trades is not None:
        held = held_through(trades, moves)
    rows.append(data_labels(list(specs), read(SHARE_BASIS_TABLE), moves, held))
    if plan is not None:
        rows.append(plan_labels(plan))
    return pl.concat(rows, how="vertical_relaxed")


integrity_checks = [scores_match_point_in_time_recomputation]

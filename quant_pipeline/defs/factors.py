"""Factor assets: point-in-time factor values per rebalance date, and strategy scores."""

import dagster as dg
import polars as pl

import quant_pipeline.core.data.curation as curation_module
import quant_pipeline.core.data.share_basis as share_basis_module
import quant_pipeline.core.factors.point_in_time as point_in_time_module
import quant_pipeline.core.factors.values as values_module
import quant_pipeline.core.strategies.scoring as scoring_module
from quant_pipeline.core.data.calendar import rebalance_dates, trading_days
from quant_pipeline.core.data.fingerprints import Reuse, digest, hashes_before
from quant_pipeline.core.data.schema import CLOSE_PRICE_COLUMNS
from quant_pipeline.core.data.share_basis import SHARE_BASIS_TABLE, SPLIT_ADJUSTED
from quant_pipeline.core.factors.point_in_time import point_in_time_factor_values, vintage_report
from quant_pipeline.core.factors.values import FACTOR_VALUES_SCHEMA, profile_shares
from quant_pipeline.core.strategies.scoring import (
    COMPONENTS_SCHEMA,
    SCORES_SCHEMA,
    profile_columns,
    score,
    with_country,
)
from quant_pipeline.defs.incremental import (
    Incremental,
    code_version,
    frame_digest,
    reuse_metadata,
    spec_digest,
    stored_metadata,
)
from quant_pipeline.defs.metadata import table_metadata
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.defs.strategies import (
    runnable_strategies,
    strategy_plan,
    write_owned,
)
from quant_pipeline.defs.tables import reads, table_spec
from quant_pipeline.storage.warehouse import Warehouse

GROUP = "factors"
KINDS = {"duckdb", "polars"}

VALUES_READS = reads(
    "curated.prices",
    "curated.fundamentals_vintages",
    "curated.securities",
    "curated.membership",
    SHARE_BASIS_TABLE,
)
SCORES_READS = reads(
    "factors.values", "factors.values_inputs", "factors.rebalance_dates", "curated.securities"
)
VALUES = Incremental(
    "factors.values",
    ("rebalance_date",),
    "Per rebalance date: the digest of the inputs its factor values were computed from (prices "
    "and fundamentals known before it, securities, membership, share basis, code); an unchanged "
    "digest keeps the date's stored values.",
)
SCORES = Incremental(
    "factors.scores",
    ("strategy", "rebalance_date"),
    "Per strategy and rebalance date: the digest its scores were computed from (that date's "
    "factor values digest, the strategy's spec, the scoring code).",
)


VALUES_CODE = (values_module, point_in_time_module, curation_module, share_basis_module)
UNCHANGING_COLUMNS = ("ingested_at",)  # when a row was loaded is not its content


def values_digests(
    read, dates: list, vintages: pl.DataFrame, securities: pl.DataFrame
) -> pl.DataFrame:
    """Each rebalance date's input digest: the prices and the fundamentals vintages dated
    before it (``point_in_time_factor_values`` looks at nothing later), the securities' sectors,
    the profile shares of the tickers that fall back on them on that date, the membership and
    share-basis tables whole, and the code's version."""
    price_hashes = hashes_before(
        read.cumulative_hashes("curated.prices", "date", CLOSE_PRICE_COLUMNS), dates
    )
    vintage_columns = [c for c in vintages.columns if c not in UNCHANGING_COLUMNS]
    vintage_hashes = hashes_before(
        read.cumulative_hashes("curated.fundamentals_vintages", "available_at", vintage_columns),
        dates,
    )
    first_prices = read.date_ranges("curated.prices", "ticker", "date").select(
        pl.col("key").alias("ticker"), pl.col("first").alias("_first_price")
    )
    fallback = profile_share_hashes(dates, first_prices, vintages, securities)
    splits = split_hashes(dates, read(SHARE_BASIS_TABLE))
    sectors = securities.select("ticker", "sector").sort("ticker").hash_rows().sum()
    membership = read.content_hash("curated.membership")
    code = code_version(*VALUES_CODE)
    return pl.DataFrame(
        {
            "rebalance_date": dates,
            "digest": [
                digest(
                    code,
                    price_hashes[d],
                    vintage_hashes[d],
                    sectors,
                    fallback.get(d),
                    splits.get(d),
                    membership,
                )
                for d in dates
            ],
        },
        schema={"rebalance_date": pl.Date, "digest": pl.String},
    )


def split_hashes(dates: list, events: pl.DataFrame) -> dict:
    """Per rebalance date: a hash of the share-basis events that can touch its values: every
    split of a price series restated for later splits, and the as-traded splits dated before
    it (``share_multiplier`` and ``split_index`` apply no later as-traded split)."""
    if events.is_empty() or not dates:
        return {}
    hashed = events.sort(events.columns).with_columns(_h=events.sort(events.columns).hash_rows())
    frame = (
        pl.DataFrame({"rebalance_date": dates}, schema={"rebalance_date": pl.Date})
        .join(hashed, how="cross")
        .filter(
            (pl.col("price_basis") == SPLIT_ADJUSTED) | (pl.col("date") < pl.col("rebalance_date"))
        )
        .group_by("rebalance_date")
        .agg(pl.len().alias("n"), pl.col("_h").sum())
    )
    return {d: f"{n}:{h}" for d, n, h in frame.iter_rows()}


def profile_share_hashes(
    dates: list, first_prices: pl.DataFrame, vintages: pl.DataFrame, securities: pl.DataFrame
) -> dict:
    """Per rebalance date: a hash of the profile shares (:func:`profile_shares`: the first
    profile's) of the tickers whose market cap may fall back on them then (a price before the
    date, and no fundamentals row with shares known before it, or one without shares); only
    these rows may depend on them. ``first_prices``: ticker, _first_price (its first priced
    day, from the warehouse: grouping 15M price rows in polars took a GB)."""
    shares = profile_shares(securities.columns)
    if not dates:
        return {}
    known = vintages.group_by("ticker").agg(
        pl.col("available_at")
        .filter(pl.col("shares_outstanding").is_not_null())
        .min()
        .cast(pl.Date)
        .alias("_first_shares"),
        pl.col("available_at")
        .filter(pl.col("shares_outstanding").is_null())
        .min()
        .cast(pl.Date)
        .alias("_first_missing"),
    )
    profile = securities.select("ticker", shares.alias("_shares")).with_columns(
        _h=pl.struct("ticker", "_shares").hash()
    )
    frame = (
        pl.DataFrame({"rebalance_date": dates}, schema={"rebalance_date": pl.Date})
        .join(first_prices.join(known, on="ticker", how="left"), how="cross")
        .filter(
            (pl.col("_first_price") < pl.col("rebalance_date"))
            & (
                pl.col("_first_shares").is_null()
                | (pl.col("_first_shares") >= pl.col("rebalance_date"))
                | (pl.col("_first_missing") < pl.col("rebalance_date"))
            )
        )
        .join(profile, on="ticker", how="inner")
        .group_by("rebalance_date")
        .agg(pl.len().alias("n"), pl.col("_h").sum())
    )
    return {d: f"{n}:{h}" for d, n, h in frame.iter_rows()}


def fundamentals_vintage(
    stored_in: Warehouse, reuse: Reuse, vintages: pl.DataFrame, dates: list
) -> pl.DataFrame:
    """``factors.fundamentals_vintage`` for ``dates``: a date's row counts the fundamentals known
    before it, which its values digest covers, so a kept date keeps the row the step stored
    (``stored_in``: the step's own output, read as its digests are) and only the computed dates
    are counted again (``vintage_report`` of all of them when none is kept)."""
    kept = reuse.kept["rebalance_date"].to_list() if reuse.kept.height else []
    if not kept or not stored_in.has_table("factors.fundamentals_vintage"):
        return vintage_report(vintages, dates)
    stored = stored_in.read_table("factors.fundamentals_vintage", filters={"rebalance_date": kept})
    if stored.height != len(set(kept)):  # a kept date without its row: count every date
        return vintage_report(vintages, dates)
    fresh = vintage_report(vintages, reuse.computed_values("rebalance_date"))
    return (
        pl.concat([stored.select(fresh.columns).cast(fresh.schema), fresh])
        .filter(pl.col("rebalance_date").is_in(dates))
        .sort("rebalance_date")
    )


def rebalance_schedule(days: pl.Series, specs: dict) -> pl.DataFrame:
    """``factors.rebalance_dates``: the dates of every frequency the scored strategies use
    (signal and blend kinds need no scores; research reads the monthly dates)."""
    return pl.concat(
        [
            pl.DataFrame(
                {"frequency": freq, "rebalance_date": rebalance_dates(days, freq)},
                schema={"frequency": pl.String, "rebalance_date": pl.Date},
            )
            for freq in sorted({s.rebalance for s in specs.values() if s.scored} or {"monthly"})
        ]
    )


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
        VALUES.spec(GROUP, VALUES_READS.deps),
    ],
    pool="warehouse",
)
def factor_values_asset(market: MarketDataResource, warehouse: WarehouseResource):
    """Rebalance dates, point-in-time factor values and the fundamentals vintage they used."""
    read = VALUES_READS.reader(warehouse.read_only())
    specs = runnable_strategies(market, warehouse)
    membership = read("curated.membership")
    # the calendar from the warehouse: the prices are read only when a date is computed
    schedule = rebalance_schedule(trading_days(read.distinct_dates("curated.prices")), specs)
    dates = schedule["rebalance_date"].unique().sort().to_list()
    vintages = read("curated.fundamentals_vintages")
    securities = read("curated.securities")
    digests = values_digests(read, dates, vintages, securities)
    reuse = VALUES.plan(warehouse, market, digests)
    computed = reuse.computed_values("rebalance_date")
    values = pl.DataFrame(schema=FACTOR_VALUES_SCHEMA)
    if computed:
        # one contiguous copy of DuckDB's ~120k-row Arrow chunks: the factor functions on
        # the chunked frame copied them again and again (3,000 tickers: 2.6 -> 2.1 GB, faster)
        values = point_in_time_factor_values(
            read("curated.prices", columns=CLOSE_PRICE_COLUMNS).rechunk(),
            vintages,
            securities,
            computed,
            membership=membership if membership.height else None,
            share_basis=read(SHARE_BASIS_TABLE),
        )
    vintage = fundamentals_vintage(warehouse.read_only(), reuse, vintages, dates)
    wh = warehouse.get()
    frequencies = schedule["frequency"].unique().to_list()
    # the two small tables are rewritten only when they changed (a write costs a transaction)
    if not wh.holds("factors.rebalance_dates", schedule):
        write_owned(wh, market, "factors.rebalance_dates", schedule, "frequency", frequencies)
    VALUES.write(wh, market, reuse, values, "rebalance_date", dates)
    if not wh.holds("factors.fundamentals_vintage", vintage):
        write_owned(wh, market, "factors.fundamentals_vintage", vintage, "rebalance_date", dates)
    stored_dates = wh.read_table("factors.values", columns=["rebalance_date"])["rebalance_date"]
    stored = {
        "n": stored_dates.len(),
        "dates": stored_dates.n_unique(),
        "first": stored_dates.min(),
        "last": stored_dates.max(),
    }
    yield dg.MaterializeResult(
        asset_key=["factors", "values"],
        metadata={
            **table_metadata(
                "factors.values",
                values,
                rebalance_dates=stored["dates"],
                first_rebalance=str(stored["first"]),
                last_rebalance=str(stored["last"]),
                rows_recomputed=values.height,
                fundamentals_vintage=dg.MetadataValue.json(
                    dict(vintage.group_by("vintage").len().sort("vintage").iter_rows())
                ),
            ),
            "dagster/row_count": stored["n"],
            **reuse_metadata(reuse),
        },
    )
    yield dg.MaterializeResult(
        asset_key=VALUES.digests.split("."),
        metadata={**table_metadata(VALUES.digests, reuse.current), **reuse_metadata(reuse)},
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


def scores_digests(read, specs: dict, schedule: pl.DataFrame) -> pl.DataFrame:
    """Each (strategy, rebalance date)'s input digest: that date's factor-values digest, the
    strategy's spec, the securities when the spec screens on their profile, the scoring code."""
    values = read("factors.values_inputs").rename({"digest": "values_digest"})
    profile = ""
    if profile_columns(specs.values()):  # eligibility reads the profile's country or exchange
        securities = read("curated.securities")
        columns = [c for c in ("ticker", "country", "exchange") if c in securities.columns]
        profile = frame_digest(securities.select(columns))
    code = code_version(scoring_module)
    frames = [
        schedule.filter(pl.col("frequency") == spec.rebalance)
        .join(values, on="rebalance_date", how="inner")
        .select(
            pl.lit(name).alias("strategy"),
            "rebalance_date",
            pl.concat_str(
                pl.lit(digest(code, spec_digest(spec), profile) + "|"), "values_digest"
            ).alias("digest"),
        )
        for name, spec in specs.items()
    ]
    schema = {"strategy": pl.String, "rebalance_date": pl.Date, "digest": pl.String}
    return pl.concat([pl.DataFrame(schema=schema), *frames], how="vertical_relaxed")


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
        SCORES.spec(GROUP, SCORES_READS.deps),
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
    schedule = read("factors.rebalance_dates")
    reuse = SCORES.plan(warehouse, market, scores_digests(read, specs, schedule))
    scores = [pl.DataFrame(schema=SCORES_SCHEMA)]
    components = [pl.DataFrame(schema=COMPONENTS_SCHEMA)]
    if reuse.computed.height:
        values = read("factors.values")
        if profile_columns(specs.values()):
            values = with_country(values, read("curated.securities"))
        for name, spec in specs.items():
            dates = reuse.computed.filter(pl.col("strategy") == name).select("rebalance_date")
            if dates.is_empty():
                continue
            s, c = score(values.join(dates, on="rebalance_date", how="semi"), spec)
            scores.append(s)
            components.append(c)
    new_scores = pl.concat(scores, how="vertical_relaxed")
    all_components = pl.concat(components, how="vertical_relaxed")
    wh = warehouse.get()
    # the components follow their scores' keys
    SCORES.write_tables(
        wh,
        market,
        reuse,
        {"factors.scores": new_scores, "factors.score_components": all_components},
    )
    all_scores = wh.read_table("factors.scores")
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
            rows_recomputed=new_scores.height,
            **reuse_metadata(reuse),
        ),
    )
    yield dg.MaterializeResult(
        asset_key=SCORES.digests.split("."),
        metadata={**table_metadata(SCORES.digests, reuse.current), **reuse_metadata(reuse)},
    )
    yield dg.MaterializeResult(
        asset_key=["factors", "score_components"],
        metadata=stored_metadata(wh, "factors.score_components", all_components, reuse),
    )


factor_assets = [factor_values_asset, factor_scores]

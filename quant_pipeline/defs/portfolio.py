"""Portfolio assets: target weights per strategy and rebalance date under the constraints."""

import dagster as dg
import polars as pl

import quant_pipeline.core.strategies.staggered as staggered_module
import quant_pipeline.core.strategies.target_weights as target_weights_module
import quant_pipeline.core.strategies.weighting as weighting_module
from quant_pipeline.core.strategies.signal_weights import signal_constraint_report
from quant_pipeline.core.strategies.staggered import staggered_weights
from quant_pipeline.core.strategies.target_weights import (
    REPORT_SCHEMA,
    WEIGHTS_SCHEMA,
    target_weights,
)
from quant_pipeline.core.strategies.weighting import (
    COVARIANCE_SCHEMES,
    PriceHistory,
    WeightingRules,
    reweight,
)
from quant_pipeline.core.strategies.weighting import (
    REPORT_SCHEMA as WEIGHTING_REPORT_SCHEMA,
)
from quant_pipeline.defs.incremental import (
    Incremental,
    code_version,
    digest_map,
    reuse_metadata,
    spec_digest,
    strategy_digests,
)
from quant_pipeline.defs.metadata import markdown_table, table_metadata
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.defs.strategies import runnable_strategies
from quant_pipeline.defs.tables import reads, table_spec

GROUP = "portfolio"
KINDS = {"duckdb", "polars"}

WEIGHTS_READS = reads(
    "factors.scores",
    "factors.scores_inputs",
    "portfolio.signal_weights",
    "portfolio.signal_weights_inputs",
    "factors.values",
    "curated.prices",
)
WEIGHTS = Incremental(
    "portfolio.target_weights",
    ("strategy",),
    "Per strategy: the digest of what its target weights were computed from (its scores' or "
    "signal weights' digests, its spec, the factor values and prices a non-equal scheme reads, "
    "the code); unchanged = kept.",
)


def weights_digests(read, specs: dict) -> pl.DataFrame:
    """Each strategy's input digest: the digests of its scores (per rebalance date) or signal
    weights, its spec, and for non-equal weighting the factor values and prices."""
    scores = digest_map(read("factors.scores_inputs"))
    signals = digest_map(read("portfolio.signal_weights_inputs"))
    code = code_version(target_weights_module, staggered_module, weighting_module)
    reweighting = None
    parts = {}
    for name, spec in specs.items():
        extra: tuple = ()
        if spec.kind == "factor" and not WeightingRules.from_spec(spec).is_equal:
            if reweighting is None:
                reweighting = (
                    read.content_hash("factors.values"),
                    read.content_hash("curated.prices"),
                )
            extra = reweighting
        parts[name] = (code, spec_digest(spec), scores.get(name), signals.get(name), *extra)
    return strategy_digests(parts)


def _build_weights(read, specs: dict, scores: pl.DataFrame, signal_weights: pl.DataFrame):
    """Target weights, constraint reports and weighting reports of each strategy in ``specs``
    (frames per strategy, to concatenate)."""
    weights = [pl.DataFrame(schema=WEIGHTS_SCHEMA)]
    reports = [pl.DataFrame(schema=REPORT_SCHEMA)]
    weighting_reports = [pl.DataFrame(schema=WEIGHTING_REPORT_SCHEMA)]
    for name, spec in specs.items():
        if spec.kind == "signal":
            w = signal_weights.filter(pl.col("strategy") == name)
            weights.append(w)
            reports.append(signal_constraint_report(w, spec))
            continue
        if spec.kind == "blend":  # a blend holds strategies, not names: see backtest.daily
            continue
        build = staggered_weights if spec.kind == "staggered" else target_weights
        own_scores = scores.filter(pl.col("strategy") == name)
        w, r = build(own_scores, spec)
        rules = WeightingRules.from_spec(spec)
        if spec.kind == "factor" and not rules.is_equal:
            w, wr = _reweighted(read, w, rules, own_scores)
            weighting_reports.append(wr)
        weights.append(w)
        reports.append(r)
    return weights, reports, weighting_reports


@dg.multi_asset(
    name="portfolio__target_weights",
    specs=[
        table_spec(
            "portfolio.target_weights",
            "Target weights per strategy and rebalance date (sum 1; <= 1 for staggered/signal).",
            GROUP,
            WEIGHTS_READS.deps,
        ),
        table_spec(
            "portfolio.constraint_report",
            "Per strategy and rebalance date: names eligible and selected, sector cap met or not.",
            GROUP,
            WEIGHTS_READS.deps,
        ),
        table_spec(
            "portfolio.weighting_report",
            "Per non-equal-weight strategy and rebalance date: scheme, largest name and sector "
            "weight, turnover (limited or not), covariance shrinkage, names dropped.",
            GROUP,
            WEIGHTS_READS.deps,
        ),
        WEIGHTS.spec(GROUP, WEIGHTS_READS.deps),
    ],
    pool="warehouse",
)
def portfolio_target_weights(
    context: dg.AssetExecutionContext, market: MarketDataResource, warehouse: WarehouseResource
):
    """Build every strategy's target weights under its constraints, with a constraint report."""
    read = WEIGHTS_READS.reader(warehouse.read_only())
    specs = runnable_strategies(market, warehouse)
    reuse = WEIGHTS.plan(warehouse, market, weights_digests(read, specs))
    specs = {n: s for n, s in specs.items() if n in set(reuse.computed_values("strategy"))}
    scores = read("factors.scores", filters={"strategy": list(specs)})
    signal_weights = read("portfolio.signal_weights", filters={"strategy": list(specs)})
    weights, reports, weighting_reports = _build_weights(read, specs, scores, signal_weights)
    all_weights = pl.concat(weights, how="vertical_relaxed")
    report = pl.concat(reports, how="vertical_relaxed")
    wh = warehouse.get()
    weighting = pl.concat(weighting_reports, how="vertical_relaxed")
    WEIGHTS.write_tables(
        wh,
        market,
        reuse,
        {
            "portfolio.target_weights": all_weights,
            "portfolio.constraint_report": report,
            "portfolio.weighting_report": weighting,
        },
    )
    # the page shows every strategy's stored rows, kept and recomputed alike
    all_weights = wh.read_table("portfolio.target_weights")
    report = wh.read_table("portfolio.constraint_report")
    weighting = wh.read_table("portfolio.weighting_report")
    breaches = report.filter(~pl.col("cap_met"))
    if breaches.height:
        context.log.warning(
            f"{breaches.height} rebalances could not meet their sector cap; "
            "see portfolio.constraint_report"
        )
    latest = all_weights.filter(
        pl.col("rebalance_date") == pl.col("rebalance_date").max().over("strategy")
    ).sort("strategy", "weight", "ticker", descending=[False, True, False])
    yield dg.MaterializeResult(
        asset_key=["portfolio", "target_weights"],
        metadata=table_metadata(
            "portfolio.target_weights",
            all_weights,
            latest_portfolios=dg.MetadataValue.md(markdown_table(latest, max_rows=60)),
            constraint_breaches=breaches.height,
            breaches=dg.MetadataValue.md(markdown_table(breaches, max_rows=20)),
            **reuse_metadata(reuse),
        ),
    )
    yield dg.MaterializeResult(
        asset_key=WEIGHTS.digests.split("."),
        metadata={**table_metadata(WEIGHTS.digests, reuse.current), **reuse_metadata(reuse)},
    )
    yield dg.MaterializeResult(
        asset_key=["portfolio", "constraint_report"],
        metadata=table_metadata(
            "portfolio.constraint_report", report, constraint_breaches=breaches.height
        ),
    )
    yield dg.MaterializeResult(
        asset_key=["portfolio", "weighting_report"],
        metadata=table_metadata("portfolio.weighting_report", weighting),
    )


def _reweighted(read, w: pl.DataFrame, rules: WeightingRules, scores: pl.DataFrame):
    """Weights of a non-equal scheme: factors.values and prices before each date as needed."""
    columns = ["rebalance_date", "ticker", "volatility", "market_cap"]
    values = read("factors.values", columns=columns)
    history = None
    if rules.scheme in COVARIANCE_SCHEMES:
        prices = read("curated.prices", columns=["ticker", "date", "adj_close"])
        history = PriceHistory(prices, w["ticker"].unique().to_list())
    return reweight(w, rules, scores=scores, values=values, history=history)


portfolio_assets = [portfolio_target_weights]

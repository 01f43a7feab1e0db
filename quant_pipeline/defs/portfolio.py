"""Portfolio assets: target weights per strategy and rebalance date under the constraints."""

import dagster as dg
import polars as pl

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
from quant_pipeline.defs.metadata import markdown_table, table_metadata
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.defs.strategies import runnable_strategies, write_owned
from quant_pipeline.defs.tables import reads, table_spec

GROUP = "portfolio"
KINDS = {"duckdb", "polars"}

WEIGHTS_READS = reads(
    "factors.scores", "portfolio.signal_weights", "factors.values", "curated.prices"
)


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
    ],
    pool="warehouse",
)
def portfolio_target_weights(
    context: dg.AssetExecutionContext, market: MarketDataResource, warehouse: WarehouseResource
):
    """Build every strategy's target weights under its constraints, with a constraint report."""
    read = WEIGHTS_READS.reader(warehouse.read_only())
    specs = runnable_strategies(market, warehouse)
    scores = read("factors.scores")
    signal_weights = read("portfolio.signal_weights")
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
    all_weights = pl.concat(weights, how="vertical_relaxed")
    report = pl.concat(reports, how="vertical_relaxed")
    wh = warehouse.get()
    write_owned(wh, market, "portfolio.target_weights", all_weights)
    write_owned(wh, market, "portfolio.constraint_report", report)
    weighting = pl.concat(weighting_reports, how="vertical_relaxed")
    write_owned(wh, market, "portfolio.weighting_report", weighting)
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
        ),
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

"""Research assets: factor diagnostics (IC, quintiles, turnover) and "is it luck?" baselines."""

import dagster as dg
import polars as pl

from quant_pipeline.core.factors.values import FACTOR_NAMES
from quant_pipeline.core.reporting import backtest_charts as plots
from quant_pipeline.core.reporting.research_charts import (
    ic_summary_png,
    luck_png,
    quantile_returns_png,
)
from quant_pipeline.core.research.factor_diagnostics import forward_returns
from quant_pipeline.core.research.tables import (
    LUCK_SCHEMA,
    PERIODS_PER_YEAR,
    factor_diagnostics,
    luck_report,
)
from quant_pipeline.defs.metadata import markdown_table, table_metadata
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.defs.strategies import runnable_strategies, selected_strategies, write_owned
from quant_pipeline.defs.tables import reads, table_spec

GROUP = "research"
KINDS = {"duckdb", "polars"}
N_RANDOM_PORTFOLIOS = 200
SEED = 20240601
# factors judged in factors.values (price, volume and size are filters more than factors)
DIAGNOSED = tuple(f for f in FACTOR_NAMES if f not in ("price", "avg_volume", "avg_dollar_volume"))


DIAGNOSTICS_READS = reads(
    "factors.rebalance_dates", "factors.values", "factors.scores", "curated.prices"
)
LUCK_READS = reads(
    "factors.rebalance_dates",
    "factors.scores",
    "portfolio.target_weights",
    "backtest.daily",
    "curated.prices",
)


def _schedule(sched: pl.DataFrame, frequency: str) -> list:
    """The sorted rebalance dates of one frequency in factors.rebalance_dates."""
    return sched.filter(pl.col("frequency") == frequency)["rebalance_date"].sort().to_list()


@dg.multi_asset(
    specs=[
        table_spec(
            "research.factor_ic",
            "Per factor and rebalance date: Spearman IC vs next-period return, "
            "top-minus-bottom quintile spread, top-quintile turnover, rank autocorrelation.",
            GROUP,
            DIAGNOSTICS_READS.deps,
        ),
        table_spec(
            "research.factor_quantiles",
            "Per factor, rebalance date and quintile: mean next-period return.",
            GROUP,
            [dg.AssetKey(["research", "factor_ic"]), *DIAGNOSTICS_READS.deps],
        ),
        table_spec(
            "research.factor_summary",
            "Per factor: mean IC, t-stat, hit rate, mean spread, turnover, autocorr.",
            GROUP,
            [dg.AssetKey(["research", "factor_ic"]), *DIAGNOSTICS_READS.deps],
        ),
    ],
    pool="warehouse",
)
def factor_diagnostics_assets(market: MarketDataResource, warehouse: WarehouseResource):
    """Judge every factor (and every scored strategy's composite) against forward returns."""
    read = DIAGNOSTICS_READS.reader(warehouse.read_only())
    sched = read("factors.rebalance_dates")
    frequency = next(f for f in PERIODS_PER_YEAR if f in set(sched["frequency"]))
    prices = read("curated.prices", columns=["ticker", "date", "adj_close"])
    values = read("factors.values").filter(pl.col("in_universe") & pl.col("price").is_not_null())
    dates = _schedule(sched, frequency)
    fwd = forward_returns(prices, dates)
    ic, quantiles, summary = factor_diagnostics(
        values.filter(pl.col("rebalance_date").is_in(dates)), fwd, DIAGNOSED
    )
    # each scored strategy's composite, on its own schedule (rank 1 = best, so negate it)
    scores = read("factors.scores").filter(pl.col("eligible"))
    parts = [(ic, quantiles, summary)]
    for name, spec in runnable_strategies(market, warehouse).items():
        if not spec.scored:
            continue
        own = _schedule(sched, spec.rebalance)
        frame = scores.filter(pl.col("strategy") == name).select(
            "rebalance_date", "ticker", (-pl.col("rank").cast(pl.Float64)).alias(f"strategy:{name}")
        )
        own_fwd = fwd if own == dates else forward_returns(prices, own)
        parts.append(factor_diagnostics(frame, own_fwd, [f"strategy:{name}"]))
    ic, quantiles, summary = (pl.concat([p[i] for p in parts]) for i in range(3))
    wh = warehouse.get()
    # the factors themselves and the composites of the run's strategies
    owned = [*DIAGNOSED, *(f"strategy:{n}" for n in selected_strategies(market))]
    write_owned(wh, market, "research.factor_ic", ic, "factor", owned)
    write_owned(wh, market, "research.factor_quantiles", quantiles, "factor", owned)
    write_owned(wh, market, "research.factor_summary", summary, "factor", owned)
    summary_md = markdown_table(summary.sort("mean_ic", descending=True), max_rows=60)
    charts = {}
    if summary.height:
        charts = {
            "ic_chart": dg.MetadataValue.md(
                plots.md_image(ic_summary_png(summary), "mean IC per factor")
            ),
            "quantile_chart": dg.MetadataValue.md(
                plots.md_image(quantile_returns_png(quantiles), "quintile returns per factor")
            ),
        }
    yield dg.MaterializeResult(
        asset_key=["research", "factor_ic"],
        metadata=table_metadata("research.factor_ic", ic, frequency=frequency, **charts),
    )
    yield dg.MaterializeResult(
        asset_key=["research", "factor_quantiles"],
        metadata=table_metadata("research.factor_quantiles", quantiles, **charts),
    )
    yield dg.MaterializeResult(
        asset_key=["research", "factor_summary"],
        metadata=table_metadata(
            "research.factor_summary",
            summary,
            summary=dg.MetadataValue.md(summary_md),
            **charts,
        ),
    )


@dg.asset(
    key=["research", "luck"],
    deps=LUCK_READS.deps,
    group_name=GROUP,
    kinds=KINDS,
    pool="warehouse",
)
def research_luck(
    context: dg.AssetExecutionContext, market: MarketDataResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Each factor strategy's Sharpe/CAGR percentile among random portfolios, oracle bound, PSR."""
    read = LUCK_READS.reader(warehouse.read_only())
    specs = {n: s for n, s in runnable_strategies(market, warehouse).items() if s.kind == "factor"}
    prices = read("curated.prices", columns=["ticker", "date", "adj_close"])
    scores = read("factors.scores")
    weights = read("portfolio.target_weights")
    daily = read("backtest.daily", columns=["strategy", "date", "portfolio_return"])
    sched = read("factors.rebalance_dates")
    rows, random, fwd_by_freq = [], {}, {}
    for name, spec in specs.items():
        assert spec.portfolio is not None
        eligible = scores.filter(
            (pl.col("strategy") == name) & pl.col("eligible") & pl.col("rank").is_not_null()
        ).select("rebalance_date", "ticker", "sector")
        w = weights.filter(pl.col("strategy") == name)
        if eligible.is_empty() or w.is_empty():
            context.log.warning(f"{name}: no eligible names or weights; no luck baseline")
            continue
        if spec.rebalance not in fwd_by_freq:
            fwd_by_freq[spec.rebalance] = forward_returns(prices, _schedule(sched, spec.rebalance))
        own_daily = daily.filter(pl.col("strategy") == name).sort("date")
        try:
            row, rand = luck_report(
                name,
                eligible,
                w,
                fwd_by_freq[spec.rebalance],
                spec.portfolio.top_n,
                spec.portfolio.max_sector_weight,
                PERIODS_PER_YEAR[spec.rebalance],
                daily_returns=own_daily["portfolio_return"].to_list(),
                n_portfolios=N_RANDOM_PORTFOLIOS,
                seed=SEED,
            )
        except ValueError as exc:
            context.log.warning(f"{name}: no luck baseline: {exc}")
            continue
        rows.append(row)
        random[name] = rand
    table = pl.DataFrame(rows, schema=LUCK_SCHEMA)
    write_owned(warehouse.get(), market, "research.luck", table)
    extra = {}
    if random:
        extra["luck_chart"] = dg.MetadataValue.md(
            plots.md_image(luck_png(table, random), "strategy Sharpe among random portfolios")
        )
    return dg.MaterializeResult(
        metadata=table_metadata(
            "research.luck",
            table,
            luck=dg.MetadataValue.md(markdown_table(table, max_rows=20)),
            **extra,
        )
    )


research_assets = [factor_diagnostics_assets, research_luck]

"""Signal strategy assets: technical signals on daily prices and the daily weights they imply."""

from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import polars as pl

import quant_pipeline.core.strategies.signal_weights as signal_weights_module
import quant_pipeline.core.strategies.technical_signals as technical_signals_module
from quant_pipeline.app.parallel import default_workers
from quant_pipeline.core.data.schema import PRICE_COLUMNS
from quant_pipeline.core.strategies.signal_weights import (
    EVENTS_SCHEMA,
    signal_bars,
    signal_weights,
)
from quant_pipeline.core.strategies.target_weights import WEIGHTS_SCHEMA
from quant_pipeline.core.strategies.technical_signals import SIGNAL_BATCH_ROWS
from quant_pipeline.defs.incremental import (
    Incremental,
    code_version,
    reuse_metadata,
    spec_digest,
    stored_metadata,
    strategy_digests,
)
from quant_pipeline.defs.metadata import markdown_table, table_metadata
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.defs.strategies import runnable_strategies
from quant_pipeline.defs.tables import reads

KINDS = {"duckdb", "polars"}
SIGNAL_READS = reads("curated.prices", "curated.membership", "curated.securities", "factors.values")
SIGNALS = Incremental(
    "portfolio.signal_weights",
    ("strategy",),
    "Per signal strategy: the digest of what its events and weights were computed from (the "
    "prices, membership, sectors and factor values, its spec, the code); unchanged = kept.",
)


def signal_digests(read, specs: dict) -> pl.DataFrame:
    """Each signal strategy's input digest (every input table whole: a signal on day t looks at
    the bars up to t, and a refresh changes the last ones)."""
    inputs = [read.content_hash(t) for t in SIGNAL_READS.tables]
    code = code_version(signal_weights_module, technical_signals_module)
    return strategy_digests({n: (code, spec_digest(s), *inputs) for n, s in specs.items()})


def _run_signals(context: dg.AssetExecutionContext, read, specs: dict):
    """Events, daily weights and a summary row of each signal strategy in ``specs``."""
    weights = [pl.DataFrame(schema=WEIGHTS_SCHEMA)]
    events = [pl.DataFrame(schema=EVENTS_SCHEMA)]
    summary = []
    if specs:
        membership = read("curated.membership")
        # the adjusted bars, grid and stop prices every signal strategy shares, computed once
        # from the prices in ticker batches: the whole prices frame (about 1 GB at 7,000
        # tickers, twice that while DuckDB hands it over) never exists
        with read.batches("curated.prices", PRICE_COLUMNS) as batches:
            bars = signal_bars(
                batches,
                membership if membership.height else None,
                stops=any(
                    s.signal is not None and s.signal.stop_loss is not None for s in specs.values()
                ),
            )
        sectors = read("curated.securities", columns=["ticker", "sector"])
        values = read(
            "factors.values", columns=["rebalance_date", "ticker", "quarterly_earnings_growth"]
        )
        earnings = values if values["quarterly_earnings_growth"].is_not_null().any() else None

        # the strategies share the bars and are independent: two at a time on two threads
        # (polars and numpy release the GIL; CUP-and-handle is single-threaded numpy, the
        # others leave a core idle part of the time), each computing a quarter as many rows
        # at once. Measured at 3,000 tickers (the bars and 4 strategies alone): one thread
        # 35.1 s and 2.09 GiB; two threads with whole batches 25.4 s and 2.43 GiB, with
        # quarter batches 27.4 s and 2.19 GiB. Results come back in the specs' order and do
        # not depend on the batch size.
        threads = min(default_workers(), len(specs))
        rows = SIGNAL_BATCH_ROWS if threads == 1 else SIGNAL_BATCH_ROWS // (2 * threads)

        def run(spec):
            return signal_weights(
                bars, spec, sectors=sectors, fundamentals_values=earnings, batch_rows=rows
            )

        with ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(run, specs.values()))
        for (name, spec), (w, e) in zip(specs.items(), results, strict=True):
            if spec.signal and spec.signal.signal == "canslim" and spec.signal.use_earnings:
                if earnings is None:
                    context.log.warning(
                        f"{name}: no quarterly earnings growth in factors.values (annual "
                        "fundamentals only?): CAN SLIM uses its three price/volume criteria"
                    )
            if w.filter(pl.col("weight") > 0).is_empty():
                context.log.warning(
                    f"{name}: the signal never fired on an eligible name; the strategy has no "
                    "positions and is left out of the backtest"
                )
            weights.append(w)
            events.append(e)
            held = w.filter(pl.col("weight") > 0).group_by("rebalance_date").len()["len"]
            summary.append(
                {
                    "strategy": name,
                    "entries": int(e["entry"].sum()),
                    "rebalance_days": w["rebalance_date"].n_unique(),
                    "mean_names_held": round(held.mean() or 0.0, 1),
                }
            )
    return weights, events, summary


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["factors", "signal_events"],
            deps=SIGNAL_READS.deps,
            description="Entries and exit starts of every signal strategy per ticker and day.",
            group_name="factors",
            kinds=KINDS,
        ),
        dg.AssetSpec(
            ["portfolio", "signal_weights"],
            deps=[["factors", "signal_events"], *SIGNAL_READS.deps],
            description="Daily target weights of the signal strategies (days the book changes).",
            group_name="portfolio",
            kinds=KINDS,
        ),
        SIGNALS.spec("portfolio", SIGNAL_READS.deps),
    ],
    pool="warehouse",
)
def signal_strategy_weights(
    context: dg.AssetExecutionContext, market: MarketDataResource, warehouse: WarehouseResource
):
    """Run every signal strategy on curated.prices; write its events and daily target weights."""
    read = SIGNAL_READS.reader(warehouse.read_only())
    specs = {n: s for n, s in runnable_strategies(market, warehouse).items() if s.kind == "signal"}
    reuse = SIGNALS.plan(warehouse, market, signal_digests(read, specs))
    specs = {n: s for n, s in specs.items() if n in set(reuse.computed_values("strategy"))}
    weights, events, summary = _run_signals(context, read, specs)
    all_events = pl.concat(events, how="vertical_relaxed")
    all_weights = pl.concat(weights, how="vertical_relaxed")
    wh = warehouse.get()
    SIGNALS.write_tables(
        wh,
        market,
        reuse,
        {"factors.signal_events": all_events, "portfolio.signal_weights": all_weights},
    )
    yield dg.MaterializeResult(
        asset_key=["factors", "signal_events"],
        metadata=stored_metadata(wh, "factors.signal_events", all_events, reuse),
    )
    yield dg.MaterializeResult(
        asset_key=SIGNALS.digests.split("."),
        metadata={**table_metadata(SIGNALS.digests, reuse.current), **reuse_metadata(reuse)},
    )
    yield dg.MaterializeResult(
        asset_key=["portfolio", "signal_weights"],
        metadata=stored_metadata(
            wh,
            "portfolio.signal_weights",
            all_weights,
            reuse,
            strategies=dg.MetadataValue.md(markdown_table(pl.DataFrame(summary), max_rows=20)),
        ),
    )


signal_assets = [signal_strategy_weights]

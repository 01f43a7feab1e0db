"""The sweep's 100 weight sets through our share simulation and through vectorbt: the time ratio.

    pip install -e '.[bench]'          # vectorbt (numba, plotly, ...), benchmark only
    python -m benchmarks.run --sizes 3000 --stages generate,ingest,curate,factors \\
        --strategies multifactor_smallcap,momentum_12_1 --workdir DIR --keep
    python -m benchmarks.vectorbt_ratio --workdir DIR/3000 [--variants 100] [--json out.json]

Reads the harness's bench warehouse, builds the weight sets of the shipped multifactor_smallcap
sweep's first ``--variants`` variants once (``prepare_sweep`` + ``variant_weights``, the same
for both), then times, in this one process and one after the other:

* ours: ``simulate_daily`` (the share simulation's fast path) of every weight set on the price
  matrix built once, default trading model ($100,000, whole shares, IB fixed commissions:
  $0.005/share, $1 minimum, 1% cap);
* vectorbt: ``Portfolio.from_orders`` of every weight set (``size_type='targetpercent'`` on the
  rebalance dates, 0 for names to sell, ``call_seq='auto'`` so sells go first,
  ``cash_sharing=True`` in one group, $100,000, ``size_granularity=1`` for whole shares,
  ``fixed_fees=1.0``: the IB minimum per order, vectorbt having no per-share fee with a minimum
  and a cap), on a wide adjusted-close frame built once, then ``Portfolio.value()``.

Differences (vectorbt's model, not ours): it trades and values at one price per column (the
adjusted close here, so its whole shares are adjusted shares, and dividends are in the price,
not cash); its target percent is of the value before the day's orders, with no reserve for
costs (an order that does not fit the cash is cut); no tolerance band or minimum order (ours
uses neither by default); a name without a price that day cannot trade (we buy at the last
price within 5 trading days, as the weights engine does). A cross-check with no costs and
fractional shares on both sides reports how close the two equity curves are.

CPU time (user + system) is reported beside wall time: the machine is shared. vectorbt's numba
compilation is done on a tiny portfolio first and reported on its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

START_CASH = 100_000.0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Clock:
    """Wall and CPU seconds of a block, kept under a name."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def __call__(self, name: str):
        clock = self

        class _Block:
            def __enter__(self):
                self.t, self.c = time.perf_counter(), cpu_seconds()

            def __exit__(self, *exc):
                clock.wall[name] = clock.wall.get(name, 0.0) + time.perf_counter() - self.t
                clock.cpu[name] = clock.cpu.get(name, 0.0) + cpu_seconds() - self.c

        return _Block()


def weight_sets(workdir: Path, n: int, clock: Clock):
    """The sweep's weight sets and the shared context (price matrix) of a bench warehouse."""
    from benchmarks.stage import bench_sweep, sweep_inputs
    from quant_pipeline.core.backtest import reference_engine as backtest
    from quant_pipeline.core.research import sweeps
    from quant_pipeline.storage.warehouse import Warehouse

    values, schedules, prices = sweep_inputs(Warehouse(workdir / "bench.duckdb"))
    sweep = bench_sweep(schedules, n)
    with clock("prepare (scores, price matrix)"):
        bench = backtest.equal_weight_benchmark(prices)
        ctx = sweeps.prepare_sweep(sweep, values, schedules, prices.drop("daily_return"), bench)
    with clock("weights"):
        sets = [
            sweeps.variant_weights(v, None, schedules[v.spec.rebalance], ctx.scores, ctx.history)
            for v in sweep.variants
        ]
    return sweep, ctx, sets


def adjusted_close_frame(matrix):
    """The matrix's as-of adjusted close (last valid price carried; NaN before the first) as a
    pandas frame, dates x tickers: vectorbt's one price per column."""
    import pandas as pd

    seen = matrix.row
    at = np.maximum(seen, 0)
    cols = np.arange(matrix.tickers.size)
    adj = np.where(seen >= 0, matrix.eff[at, cols], np.nan)
    return pd.DataFrame(adj, index=pd.DatetimeIndex(matrix.dates), columns=matrix.tickers)


def target_sizes(weights: pl.DataFrame, close) -> object:
    """Target percent per rebalance date (0 for a name held before and not wanted), NaN on
    other days, over the columns this weight set ever holds."""
    import pandas as pd

    names = sorted(weights["ticker"].unique().to_list())
    wide = weights.pivot(on="ticker", index="rebalance_date", values="weight").sort(
        "rebalance_date"
    )
    sizes = pd.DataFrame(np.nan, index=close.index, columns=names)
    block = wide.select(names).fill_null(0.0).to_numpy()
    rows = close.index.get_indexer(pd.DatetimeIndex(wide["rebalance_date"].to_numpy()))
    sizes.iloc[rows] = block
    return sizes, close[names]


def vectorbt_equity(weights, close, whole: bool, fixed_fees: float):
    import vectorbt as vbt

    sizes, px = target_sizes(weights, close)
    first = sizes.index.get_loc(sizes.dropna(how="all").index[0])
    pf = vbt.Portfolio.from_orders(
        px.iloc[first:],
        sizes.iloc[first:],
        size_type="targetpercent",
        group_by=True,
        cash_sharing=True,
        call_seq="auto",
        init_cash=START_CASH,
        fixed_fees=fixed_fees,
        size_granularity=1.0 if whole else None,
        freq="1D",
    )
    return pf.value().to_numpy() / START_CASH


def run(workdir: Path, n: int) -> dict:
    import vectorbt as vbt

    from quant_pipeline.core.backtest.price_matrix import simulate_daily
    from quant_pipeline.core.backtest.share_simulation import TradingModel

    clock = Clock()
    sweep, ctx, sets = weight_sets(workdir, n, clock)
    with clock("ours: simulate_daily x N"):
        ours = [simulate_daily(w, ctx.matrix, TradingModel()) for w in sets]
    with clock("vectorbt: numba compilation (tiny portfolio)"):
        tiny = adjusted_close_frame(ctx.matrix).iloc[:30, :3].ffill().bfill()
        vbt.Portfolio.from_orders(tiny, 0.3, size_type="targetpercent", group_by=True,
                                  cash_sharing=True, call_seq="auto", size_granularity=1.0,
                                  fixed_fees=1.0, init_cash=START_CASH).value()  # fmt: skip
    with clock("vectorbt: adjusted close frame"):
        close = adjusted_close_frame(ctx.matrix)
    with clock("vectorbt: from_orders x N"):
        theirs = [vectorbt_equity(w, close, whole=True, fixed_fees=1.0) for w in sets]
    check = []
    for w in sets[:5]:
        mine = simulate_daily(w, ctx.matrix, TradingModel.free())["equity"].to_numpy()
        free = vectorbt_equity(w, close, whole=False, fixed_fees=0.0)
        check.append(float(np.nanmax(np.abs(mine - free))))
    final = [(o["equity"][-1], t[-1]) for o, t in zip(ours, theirs, strict=True)]
    ours_cpu = clock.cpu["ours: simulate_daily x N"]
    theirs_cpu = clock.cpu["vectorbt: from_orders x N"]
    return {
        "variants": len(sets),
        "wall": {k: round(v, 3) for k, v in clock.wall.items()},
        "cpu": {k: round(v, 3) for k, v in clock.cpu.items()},
        "ratio_ours_over_vectorbt_cpu": round(ours_cpu / theirs_cpu, 3),
        "ratio_ours_over_vectorbt_wall": round(
            clock.wall["ours: simulate_daily x N"] / clock.wall["vectorbt: from_orders x N"], 3
        ),
        "free_fractional_max_equity_gap_first5": check,
        "final_equity_ours_vs_vectorbt_first5": final[:5],
        "vectorbt": vbt.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.vectorbt_ratio")
    parser.add_argument("--workdir", type=Path, required=True, help="the harness's DIR/<size>")
    parser.add_argument("--variants", type=int, default=100)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = run(args.workdir, args.variants)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

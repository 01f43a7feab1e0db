"""One benchmark stage, run in its own process so its peak RSS is its own.

    python -m benchmarks.stage NAME --workdir DIR --tickers N --start YYYY-MM-DD --end YYYY-MM-DD
                                    [--seed 42] [--strategies a,b]

Prints one JSON object on the last line of stdout: ``{"stage", "seconds", "parts", "rows_in",
"rows_out", "peak_rss_mb"}``. ``parts`` splits the stage's wall time (read, compute, validate,
write, ...). The stages mirror the bodies of the Dagster assets in ``quant_pipeline/defs`` with the
same core calls and warehouse reads and writes, minus Dagster; ``dagster_full`` and
``dagster_refresh`` run the real assets through ``dg.materialize``.

Stage order (each reads what the previous ones wrote into ``DIR/bench.duckdb``): generate,
ingest, curate, factors, scores, portfolio, backtest, metrics; then dagster_full (its own
warehouse ``DIR/dagster.duckdb``) and dagster_refresh (a copy of it with the last week removed).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

# isort: off
import quant_pipeline  # noqa: F401  (first: it sets polars' allocator option before polars loads)
import polars as pl

# isort: on

RAW_DATASETS = ("prices", "corporate_actions", "fundamentals", "securities", "membership")
REFRESH_DAYS = 7  # the weekly refresh: one calendar week of new prices for every ticker


@dataclass
class Config:
    workdir: Path
    tickers: int
    start: date
    end: date
    seed: int
    strategies: tuple[str, ...]

    @property
    def bench_db(self) -> Path:
        return self.workdir / "bench.duckdb"

    @property
    def market_dir(self) -> Path:
        return self.workdir / "market"


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (polars and DuckDB are threaded),
    plus its finished child processes (the sweep's workers, counted once they have exited).

    On a shared machine wall time swings with the neighbours' load; CPU time much less."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class Timer:
    parts: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    step_peak_mb: dict[str, float] = field(default_factory=dict)
    rows_in: int = 0
    rows_out: int = 0

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        t0, c0 = time.perf_counter(), cpu_seconds()
        try:
            yield
        finally:
            self.parts[name] = self.parts.get(name, 0.0) + time.perf_counter() - t0
            self.cpu[name] = self.cpu.get(name, 0.0) + cpu_seconds() - c0


def _warehouse(path: Path):
    from quant_pipeline.storage.warehouse import Warehouse

    wh = Warehouse(path)
    wh.ensure_schemas()
    return wh


def _specs(cfg: Config):
    from quant_pipeline.config.strategies import load_strategies

    return load_strategies(names=cfg.strategies or None)


def _price_rows(wh) -> int:
    return wh.row_count("raw.prices") if wh.has_table("raw.prices") else 0


# ---- stages -----------------------------------------------------------------------------------


def stage_generate(cfg: Config, t: Timer) -> None:
    """The demo market in memory (what the demo source costs), then saved for the next stages."""
    from quant_pipeline.sources.demo import generate_market

    with t.part("generate"):
        market = generate_market(cfg.tickers, cfg.start, cfg.end, cfg.seed)
    t.rows_out = market.prices.height
    # Saving is harness plumbing, not pipeline work: not in the stage time.
    cfg.market_dir.mkdir(parents=True, exist_ok=True)
    with t.part("_save_parquet_untimed"):
        for name in RAW_DATASETS:
            getattr(market, name).write_parquet(cfg.market_dir / f"{name}.parquet")


def stage_ingest(cfg: Config, t: Timer) -> None:
    """write_raw of every raw dataset into an empty warehouse (upsert / vintage logic included)."""
    for suffix in ("", ".wal"):
        Path(str(cfg.bench_db) + suffix).unlink(missing_ok=True)
    wh = _warehouse(cfg.bench_db)
    for name in RAW_DATASETS:
        frame = pl.read_parquet(cfg.market_dir / f"{name}.parquet")
        if name == "prices":
            t.rows_in = frame.height
        with t.part(f"write_raw.{name}"):
            wh.write_raw(name, frame)
        t.rows_out += frame.height


def stage_curate(cfg: Config, t: Timer) -> None:
    """curated.* as the curated assets build them; pandera validation timed on its own."""
    from quant_pipeline.core.data import curation as curate
    from quant_pipeline.core.data.validation import validate

    wh = _warehouse(cfg.bench_db)
    with t.part("read"):
        raw_prices = wh.read_raw("prices", "demo")
        raw_actions = wh.read_raw("corporate_actions", "demo")
    t.rows_in = raw_prices.height
    with t.part("curate"):
        result = curate.curate_prices(raw_prices, raw_actions)
    del raw_prices
    with t.part("validate"):
        prices = validate(result.prices, "curated.prices")
    with t.part("write"):
        wh.replace_table("curated.prices", prices)
        wh.replace_table("curated.rejected_prices", result.rejected)
    t.rows_out = prices.height
    del prices, result
    with t.part("read"):
        raw_f = wh.read_raw("fundamentals", "demo")
    with t.part("curate"):
        wide = curate.curate_fundamentals(raw_f)
    with t.part("validate"):
        wide = validate(wide, "curated.fundamentals")
    with t.part("write"):
        wh.replace_table("curated.fundamentals", wide)
    for name, fn in (
        ("securities", curate.curate_securities),
        ("membership", curate.curate_membership),
    ):
        with t.part("read"):
            raw = wh.read_raw(name, "demo")
        with t.part("curate"):
            out = fn(raw)
        with t.part("validate"):
            out = validate(out, f"curated.{name}")
        with t.part("write"):
            wh.replace_table(f"curated.{name}", out)


def stage_factors(cfg: Config, t: Timer) -> None:
    """factors.values and factors.rebalance_dates (defs/factors.py::factor_values_asset)."""
    from quant_pipeline.core.data.calendar import rebalance_dates, trading_days
    from quant_pipeline.core.data.schema import CLOSE_PRICE_COLUMNS
    from quant_pipeline.core.factors.values import factor_values

    wh = _warehouse(cfg.bench_db)
    specs = _specs(cfg)
    with t.part("read"):
        prices = wh.read_table("curated.prices", columns=CLOSE_PRICE_COLUMNS)
        membership = wh.read_table("curated.membership")
        fundamentals = wh.read_table("curated.fundamentals")
        securities = wh.read_table("curated.securities")
    t.rows_in = prices.height
    with t.part("compute"):
        days = trading_days(prices)
        schedule = pl.concat(
            [
                pl.DataFrame(
                    {"frequency": freq, "rebalance_date": rebalance_dates(days, freq)},
                    schema={"frequency": pl.String, "rebalance_date": pl.Date},
                )
                for freq in sorted({spec.rebalance for spec in specs.values()})
            ]
        )
        values = factor_values(
            prices,
            fundamentals,
            securities,
            schedule["rebalance_date"].unique().sort().to_list(),
            membership=membership if membership.height else None,
        )
    with t.part("write"):
        wh.replace_table("factors.rebalance_dates", schedule)
        wh.replace_table("factors.values", values)
    t.rows_out = values.height


def stage_scores(cfg: Config, t: Timer) -> None:
    """factors.scores and factors.score_components (defs/factors.py::factor_scores)."""
    from quant_pipeline.core.strategies.scoring import score

    wh = _warehouse(cfg.bench_db)
    specs = _specs(cfg)
    with t.part("read"):
        values = wh.read_table("factors.values")
        schedule = wh.read_table("factors.rebalance_dates")
    t.rows_in = values.height
    scores, components = [], []
    for name, spec in specs.items():
        with t.part(f"score.{name}"):
            dates = schedule.filter(pl.col("frequency") == spec.rebalance).select("rebalance_date")
            s, c = score(values.join(dates, on="rebalance_date", how="semi"), spec)
        scores.append(s)
        components.append(c)
    with t.part("write"):
        all_scores = pl.concat(scores, how="vertical_relaxed")
        wh.replace_table("factors.scores", all_scores)
        wh.replace_table("factors.score_components", pl.concat(components, how="vertical_relaxed"))
    t.rows_out = all_scores.height


def stage_portfolio(cfg: Config, t: Timer) -> None:
    """portfolio.target_weights and constraint_report (defs/portfolio.py)."""
    from quant_pipeline.core.strategies.target_weights import target_weights

    wh = _warehouse(cfg.bench_db)
    specs = _specs(cfg)
    with t.part("read"):
        scores = wh.read_table("factors.scores")
    t.rows_in = scores.height
    weights, reports = [], []
    for name, spec in specs.items():
        with t.part(f"target_weights.{name}"):
            w, r = target_weights(scores.filter(pl.col("strategy") == name), spec)
        weights.append(w)
        reports.append(r)
    with t.part("write"):
        all_weights = pl.concat(weights, how="vertical_relaxed")
        wh.replace_table("portfolio.target_weights", all_weights)
        wh.replace_table("portfolio.constraint_report", pl.concat(reports, how="vertical_relaxed"))
    t.rows_out = all_weights.height


def stage_backtest(cfg: Config, t: Timer) -> None:
    """backtest.daily, trades, quarterly (defs/backtest.py::backtest_results), charts included."""
    from quant_pipeline.core.backtest import reference_engine as backtest
    from quant_pipeline.core.data.schema import CLOSE_PRICE_COLUMNS
    from quant_pipeline.core.reporting import backtest_charts as plots

    wh = _warehouse(cfg.bench_db)
    specs = _specs(cfg)
    with t.part("read"):
        weights = wh.read_table("portfolio.target_weights")
        prices = wh.read_table("curated.prices", columns=CLOSE_PRICE_COLUMNS)
        membership = wh.read_table("curated.membership")
    t.rows_in = prices.height
    with t.part("benchmark"):
        bench = backtest.equal_weight_benchmark(
            prices, membership=membership if membership.height else None
        )
    daily, trades, quarterly = [], [], []
    for name, spec in specs.items():
        w = weights.filter(pl.col("strategy") == name)
        with t.part(f"run_backtest.{name}"):
            result = backtest.run_backtest(
                w, prices, cost_bps=spec.costs.bps, benchmark=bench, strategy=name
            )
        with t.part("quarterly_summary"):
            quarterly.append(backtest.quarterly_summary(result.daily))
        with t.part("chart"):
            plots.md_image(plots.equity_chart_png(result.daily, name), name)
        daily.append(result.daily)
        trades.append(result.trades)
    with t.part("write"):
        daily_all = pl.concat(daily, how="vertical_relaxed")
        wh.replace_table("backtest.daily", daily_all)
        wh.replace_table("backtest.trades", pl.concat(trades, how="vertical_relaxed"))
        wh.replace_table("backtest.quarterly", pl.concat(quarterly, how="vertical_relaxed"))
    t.rows_out = daily_all.height


def stage_metrics(cfg: Config, t: Timer) -> None:
    """backtest.metrics, .comparison and .comparison_common_window (defs/backtest.py)."""
    from quant_pipeline.core.backtest.comparison import (
        comparison_by_window,
        comparison_common_window,
        metrics_for_strategies,
    )

    wh = _warehouse(cfg.bench_db)
    with t.part("read"):
        daily = wh.read_table("backtest.daily")
        trades = wh.read_table("backtest.trades")
    t.rows_in = daily.height
    with t.part("compute"):
        long = metrics_for_strategies(daily, trades)
        comparison = comparison_by_window(daily, long)
        common = comparison_common_window(daily)
    with t.part("write"):
        wh.replace_table("backtest.metrics", long)
        wh.replace_table("backtest.comparison", comparison)
        wh.replace_table("backtest.comparison_common_window", common)
    t.rows_out = long.height


def sweep_inputs(wh) -> tuple:
    """factors.values, the rebalance dates per frequency and curated.prices of a bench warehouse."""
    values = wh.read_table("factors.values")
    sched = wh.read_table("factors.rebalance_dates")
    prices = wh.read_table(
        "curated.prices", columns=["ticker", "date", "close", "adj_close", "daily_return"]
    )
    schedules = {
        f: sched.filter(pl.col("frequency") == f)["rebalance_date"].sort().to_list()
        for f in sched["frequency"].unique()
    }
    return values, schedules, prices


def bench_sweep(schedules: dict, n: int = 100):
    """The shipped multifactor_smallcap sweep's first ``n`` variants whose rebalance frequency
    factors.values holds (add a monthly strategy to --strategies for the monthly ones)."""
    from dataclasses import replace

    from quant_pipeline.config.sweeps import load_sweeps

    sweep = load_sweeps()["multifactor_smallcap_sweep"]
    variants = [v for v in sweep.variants if v.spec.rebalance in schedules][:n]
    return replace(sweep, variants=tuple(variants))


def stage_sweep(cfg: Config, t: Timer) -> None:
    """research.sweep: 100 variants of the shipped multifactor_smallcap sweep (``bench_sweep``)
    through scores, weights and the share simulation (its fast path on a price matrix), on
    ``QUANT_PIPELINE_SWEEP_WORKERS`` processes as the asset does. Parts: read, benchmark,
    prepare (scores once per scoring, price matrix), variants (weights, simulation, metrics
    of every variant; CPU time includes the workers'), deflate (DSR, PBO), write."""
    from quant_pipeline.app.parallel import process_map
    from quant_pipeline.core.backtest import reference_engine as backtest
    from quant_pipeline.core.backtest.share_simulation import TradingModel
    from quant_pipeline.core.research import sweeps
    from quant_pipeline.settings import from_env

    wh = _warehouse(cfg.bench_db)
    with t.part("read"):
        values, schedules, prices = sweep_inputs(wh)
    sweep = bench_sweep(schedules)
    t.rows_in = prices.height
    with t.part("benchmark"):
        bench = backtest.equal_weight_benchmark(prices)
    with t.part("prepare"):
        ctx = sweeps.prepare_sweep(sweep, values, schedules, prices.drop("daily_return"), bench)
    jobs = [
        sweeps.VariantJob(v, tuple(schedules[v.spec.rebalance]), TradingModel())
        for v in sweep.variants
    ]
    workers = from_env().sweep_workers
    with t.part(f"variants.{len(jobs)}_on_{workers}_processes"):
        runs = process_map(workers)(sweeps.run_variant, ctx, jobs)
    with t.part("deflate"):
        table = pl.DataFrame([row for row, _ in runs], infer_schema_length=None)
        result = sweeps.sweep_result(sweep, table, pl.concat([d for _, d in runs]))
    with t.part("write"):
        wh.replace_table("research.sweep", result.table)
    t.rows_out = result.table.height


def _dagster_env(cfg: Config, warehouse: Path, end: date) -> None:
    os.environ.update(
        {
            "QUANT_PIPELINE_WAREHOUSE": str(warehouse),
            "QUANT_PIPELINE_SOURCE": "demo",
            "QUANT_PIPELINE_DEMO_TICKERS": str(cfg.tickers),
            "QUANT_PIPELINE_DEMO_START": cfg.start.isoformat(),
            "QUANT_PIPELINE_DEMO_END": end.isoformat(),
            "QUANT_PIPELINE_REPORTS_DIR": str(cfg.workdir / "reports"),
            "QUANT_PIPELINE_DEMO_SEED": str(cfg.seed),
        }
    )
    if cfg.strategies:
        os.environ["QUANT_PIPELINE_STRATEGIES"] = ",".join(cfg.strategies)
    else:  # the default set: every shipped strategy
        os.environ.pop("QUANT_PIPELINE_STRATEGIES", None)


class RssSampler:
    """Samples this process's resident memory every ``interval`` seconds in a thread, so the
    peak can be attributed to the Dagster step running at the time."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), self.rss_mb()))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak_between(self, start: float, end: float) -> float:
        inside = [mb for ts, mb in self.samples if start <= ts <= end]
        return max(inside, default=0.0)


def _instance_home(cfg: Config, fresh: bool) -> Path:
    """The Dagster instance folder the stages share, as ``quant-pipeline run`` uses the
    project's persistent DAGSTER_HOME: the full stage starts it anew (a first run has no
    history); the refresh and YAML stages run in the same instance after it."""
    home = cfg.workdir / "dagster_home"
    if fresh:
        shutil.rmtree(home, ignore_errors=True)
    return home


def _materialize_all(t: Timer, home: Path, selection=None, part: str = "materialize") -> None:
    """Every asset and check (or ``selection``) in one in-process run of the persistent
    instance in ``home`` (the project's dagster.yaml); per-step wall time goes into
    ``t.parts`` (``step.<key>``) and the peak RSS sampled while each step ran into
    ``t.step_peak_mb``."""
    import dagster as dg

    from quant_pipeline.app.instance import project_instance
    from quant_pipeline.definitions import all_assets, asset_checks, build_resources
    from quant_pipeline.settings import from_env

    with project_instance(from_env(overrides={"dagster_home": home})) as instance:
        with RssSampler() as sampler, t.part(part):
            result = dg.materialize(
                [*all_assets, *asset_checks],
                selection=selection,
                resources=build_resources(),
                instance=instance,
                raise_on_error=True,
            )
        records = instance.all_logs(result.run_id)
    starts: dict[str, float] = {}
    for record in records:
        event = record.dagster_event
        if event is None:
            continue
        if event.event_type_value == "STEP_START":
            starts[event.step_key] = record.timestamp
        if event.event_type_value == "STEP_SUCCESS":
            t.parts[f"step.{event.step_key}"] = event.event_specific_data.duration_ms / 1000.0
            t.step_peak_mb[event.step_key] = round(
                sampler.peak_between(starts.get(event.step_key, 0.0), record.timestamp), 1
            )


def _base_end(cfg: Config) -> date:
    """The end of the warehouse the full run builds: one refresh period before ``end``, so
    the refresh stage adds the last week as the weekly schedule would."""
    return cfg.end - timedelta(days=REFRESH_DAYS)


def stage_dagster_full(cfg: Config, t: Timer) -> None:
    """``quant-pipeline run`` in effect: dg.materialize of every asset into a fresh warehouse,
    demo generation included (the first raw asset generates the market). The market ends one
    refresh period (a week) before ``end``; ``dagster_refresh`` then adds that week."""
    db = cfg.workdir / "dagster.duckdb"
    for suffix in ("", ".wal"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    _dagster_env(cfg, db, _base_end(cfg))
    _materialize_all(t, _instance_home(cfg, fresh=True), _all_but_guards())
    wh = _warehouse(db)
    t.rows_in = t.rows_out = wh.row_count("raw.prices")


def _all_but_guards():
    """What ``quant-pipeline run`` materializes: every asset but the research guards (sweep,
    walk-forward), which are on-demand (README, research guards)."""
    import dagster as dg

    return dg.AssetSelection.all() - dg.AssetSelection.groups("research_guards")


def _downstream():
    """``downstream_refresh_job``'s selection: what ``new_prices_sensor`` runs after a refresh."""
    from quant_pipeline.defs.curated import downstream_refresh_job

    return downstream_refresh_job.selection


def stage_dagster_refresh(cfg: Config, t: Timer) -> None:
    """The weekly refresh on a copy of the full stage's warehouse: the demo market one week
    later (the same market plus a week), ``weekly_refresh_job`` (ingestion + curated), then
    ``downstream_refresh_job`` (what ``new_prices_sensor`` starts), each timed.

    The demo market is generated before the clock starts: a real source's fetch is network time,
    not pipeline time, and the demo generator would otherwise dominate."""
    import dagster as dg

    from quant_pipeline.sources.demo import generate_market

    db = cfg.workdir / "refresh.duckdb"
    with t.part("_setup_untimed"):
        shutil.copyfile(cfg.workdir / "dagster.duckdb", db)
        Path(str(db) + ".wal").unlink(missing_ok=True)
        wh = _warehouse(db)
        t.rows_in = wh.row_count("raw.prices")
        _dagster_env(cfg, db, cfg.end)
    with t.part("_generate_untimed"):
        generate_market(cfg.tickers, cfg.start, cfg.end, cfg.seed)
    home = _instance_home(cfg, fresh=False)
    _materialize_all(
        t, home, dg.AssetSelection.groups("ingestion", "curated"), "weekly_refresh_job"
    )
    _materialize_all(t, home, _downstream(), "downstream_refresh_job")
    t.rows_out = wh.row_count("raw.prices") - t.rows_in


CHANGED_STRATEGY = "magic_formula"


def stage_dagster_yaml(cfg: Config, t: Timer) -> None:
    """One strategy's YAML changed (``magic_formula``: top 30 -> 25 names), then
    ``downstream_refresh_job`` on a copy of the refreshed warehouse."""
    import quant_pipeline.config.strategies as strategy_config

    db = cfg.workdir / "yaml.duckdb"
    with t.part("_setup_untimed"):
        shutil.copyfile(cfg.workdir / "refresh.duckdb", db)
        Path(str(db) + ".wal").unlink(missing_ok=True)
        specs = cfg.workdir / "strategies"
        shutil.rmtree(specs, ignore_errors=True)
        shutil.copytree(strategy_config.STRATEGIES_DIR, specs)
        spec = specs / f"{CHANGED_STRATEGY}.yaml"
        text = spec.read_text()
        if "top_n: 30" not in text:
            raise SystemExit(f"{spec}: no 'top_n: 30' to change")
        spec.write_text(text.replace("top_n: 30", "top_n: 25"))
        strategy_config.STRATEGIES_DIR = specs
        _dagster_env(cfg, db, cfg.end)
    _materialize_all(t, _instance_home(cfg, fresh=False), _downstream(), "downstream_refresh_job")
    t.rows_in = t.rows_out = _warehouse(db).row_count("raw.prices")


def _import_everything() -> None:
    """Import what any stage uses before the clock starts: import time (dagster alone takes
    seconds) is start-up, not stage work. Their memory stays in the peak (``import_rss_mb``)."""
    import dagster  # noqa: F401
    import matplotlib.pyplot  # noqa: F401

    import quant_pipeline.core.backtest.comparison  # noqa: F401
    import quant_pipeline.core.backtest.reference_engine  # noqa: F401
    import quant_pipeline.core.data.curation  # noqa: F401
    import quant_pipeline.core.data.validation  # noqa: F401
    import quant_pipeline.core.factors.values  # noqa: F401
    import quant_pipeline.core.reporting.backtest_charts  # noqa: F401
    import quant_pipeline.core.strategies.scoring  # noqa: F401
    import quant_pipeline.core.strategies.target_weights  # noqa: F401
    import quant_pipeline.definitions  # noqa: F401
    import quant_pipeline.sources.demo  # noqa: F401
    import quant_pipeline.storage.warehouse  # noqa: F401


STAGES: dict[str, Callable[[Config, Timer], None]] = {
    "generate": stage_generate,
    "ingest": stage_ingest,
    "curate": stage_curate,
    "factors": stage_factors,
    "scores": stage_scores,
    "portfolio": stage_portfolio,
    "backtest": stage_backtest,
    "metrics": stage_metrics,
    "sweep": stage_sweep,
    "dagster_full": stage_dagster_full,
    "dagster_refresh": stage_dagster_refresh,
    "dagster_yaml": stage_dagster_yaml,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stage")
    parser.add_argument("stage", choices=list(STAGES))
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--tickers", required=True, type=int)
    parser.add_argument("--start", required=True, type=date.fromisoformat)
    parser.add_argument("--end", required=True, type=date.fromisoformat)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--strategies", default="")
    args = parser.parse_args(argv)
    cfg = Config(
        workdir=args.workdir,
        tickers=args.tickers,
        start=args.start,
        end=args.end,
        seed=args.seed,
        strategies=tuple(s for s in args.strategies.split(",") if s),
    )
    cfg.workdir.mkdir(parents=True, exist_ok=True)
    _import_everything()
    baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    timer = Timer()
    t0, c0 = time.perf_counter(), cpu_seconds()
    STAGES[args.stage](cfg, timer)
    untimed = [k for k in timer.parts if "untimed" in k]
    seconds = time.perf_counter() - t0 - sum(timer.parts[k] for k in untimed)
    cpu = cpu_seconds() - c0 - sum(timer.cpu.get(k, 0.0) for k in untimed)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {
                "stage": args.stage,
                "seconds": round(seconds, 3),
                "cpu_seconds": round(cpu, 3),
                "parts": {k: round(v, 3) for k, v in timer.parts.items()},
                "cpu_parts": {k: round(v, 3) for k, v in timer.cpu.items()},
                "rows_in": timer.rows_in,
                "rows_out": timer.rows_out,
                "peak_rss_mb": round(peak_kb / 1024, 1),
                "import_rss_mb": round(baseline_mb, 1),
                "step_peak_rss_mb": timer.step_peak_mb,
            }
        )
    )
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

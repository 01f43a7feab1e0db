"""Reports on the backtests: monthly returns, metrics against every benchmark, HTML tear sheets.

The tear sheets are self-contained HTML files, one per strategy, under the reports directory
(``QUANT_PIPELINE_REPORTS_DIR``, default ``reports/``, or this asset's ``reports_dir`` config),
plus an ``index.html`` linking them; ``backtest.tear_sheets`` lists the files written.
"""

import html
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl

import quant_pipeline.core.backtest.comparison as comparison_module
import quant_pipeline.core.reporting.tearsheet as tearsheet_module
from quant_pipeline.app.parallel import default_workers, process_map
from quant_pipeline.core.backtest.comparison import (
    BENCHMARK,
    monthly_summary,
    relative_metrics,
    tearsheet_metrics,
)
from quant_pipeline.core.backtest.row_flags import row_flags
from quant_pipeline.core.data.fingerprints import CHANGED, KEPT, NEW
from quant_pipeline.core.data.suspect_moves import SUSPECT_MOVES_TABLE, held_through
from quant_pipeline.core.reporting import backtest_charts as plots
from quant_pipeline.core.reporting.tearsheet_page import PageJob, draw_page
from quant_pipeline.defs.incremental import (
    code_version,
    digest,
    frame_digest,
    incremental_enabled,
)
from quant_pipeline.defs.metadata import markdown_table, table_metadata
from quant_pipeline.defs.research_pages import RESEARCH_TABLES, ResearchPages
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.defs.tables import reads
from quant_pipeline.settings import from_env

GROUP = "backtest"
KINDS = {"duckdb", "polars"}
TRADE_COLUMNS = [
    "ticker",
    "sector",
    "entry_date",
    "exit_date",
    "entry_price",
    "exit_price",
    "shares",
    "return",
    "commission",
    "slippage",
    "fees",
]
MONTHLY_READS = reads("backtest.daily")
RELATIVE_READS = reads("backtest.daily", "backtest.benchmarks", "backtest.metric_settings")
TEAR_SHEET_READS = reads(
    "backtest.daily",
    "backtest.trades",
    "backtest.quarterly",
    "backtest.positions",
    "backtest.settings",
    "backtest.metrics",
    "backtest.relative_metrics",
    "backtest.blend_attribution",
    "backtest.lean_statistics",
    "backtest.metric_settings",
    SUSPECT_MOVES_TABLE,
    "portfolio.target_weights",
    *RESEARCH_TABLES,
)


@dg.asset(
    key=["backtest", "monthly_returns"],
    deps=MONTHLY_READS.deps,
    group_name=GROUP,
    kinds=KINDS,
    pool="warehouse",
)
def monthly_returns(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Compounded portfolio, benchmark and excess return per strategy and calendar month."""
    read = MONTHLY_READS.reader(warehouse.read_only())
    table = monthly_summary(
        read("backtest.daily", columns=["strategy", "date", "portfolio_return", "benchmark_return"])
    )
    warehouse.get().replace_table("backtest.monthly_returns", table)
    return dg.MaterializeResult(metadata=table_metadata("backtest.monthly_returns", table))


def run_risk_free_rate(metric_settings: pl.DataFrame) -> float:
    """The risk-free rate ``backtest.metrics`` used (``backtest.metric_settings``)."""
    rows = metric_settings.filter(pl.col("setting") == "risk_free_rate")["value"]
    if rows.len() != 1:
        raise dg.Failure(
            f"backtest.metric_settings holds {rows.len()} risk_free_rate rows, expected 1: "
            "materialize backtest/metrics first"
        )
    return float(rows[0])


@dg.asset(
    key=["backtest", "relative_metrics"],
    deps=RELATIVE_READS.deps,
    group_name=GROUP,
    kinds=KINDS,
    pool="warehouse",
)
def relative_metrics_asset(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Each strategy against each benchmark: alpha, beta, tracking error, information ratio."""
    read = RELATIVE_READS.reader(warehouse.read_only())
    daily = read("backtest.daily", columns=["strategy", "date", "portfolio_return"])
    rf = run_risk_free_rate(read("backtest.metric_settings"))
    table = relative_metrics(daily, read("backtest.benchmarks"), rf)
    warehouse.get().replace_table("backtest.relative_metrics", table)
    wide = table.pivot(on="metric", index=["strategy", "benchmark"], values="value")
    return dg.MaterializeResult(
        metadata={
            **table_metadata("backtest.relative_metrics", table),
            "by_benchmark": dg.MetadataValue.md(markdown_table(wide, max_rows=50)),
        }
    )


class TearSheetConfig(dg.Config):
    """Where the HTML tear sheets go (default: QUANT_PIPELINE_REPORTS_DIR, else reports/)."""

    reports_dir: str | None = None


def _index_html(rows: list[tuple[str, str]]) -> str:
    links = "".join(
        f'<li><a href="{html.escape(file)}">{html.escape(name)}</a></li>' for name, file in rows
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Tear sheets</title>'
        f"</head><body><h1>Tear sheets</h1><ul>{links}</ul></body></html>\n"
    )


def _page_labels(
    own: pl.DataFrame,
    setting: pl.DataFrame,
    settings: pl.DataFrame,
    benchmark: str,
    rf: float,
    generated: datetime,
    strategy_trades: pl.DataFrame,
) -> dict[str, str]:
    """The labels under a tear sheet's title: when, against what, at which rate, on which data,
    and a warning when the strategy was mostly cash, traded too little or never fired."""
    labels = {
        "generated at": generated.isoformat(),
        "benchmark": benchmark,
        "risk-free rate": f"{rf:.2%} a year (Sharpe, Sortino, alpha, Treynor, LEAN's table)",
        "benchmark columns": f"{benchmark} over this strategy's own dates, "
        f"{own['date'].min()} to {own['date'].max()} (its return on the first day is 0)",
    }
    if setting.height:
        labels["trading model"] = setting["description"][0]
    if "dataset_version" in settings.columns and settings.height:
        # one per backtest run (a blend has no settings row of its own)
        labels["dataset version"] = settings["dataset_version"][0] or "n/a"
    labels["metric definitions"] = "docs/metrics.md"
    if {"orders", "cash", "portfolio_value"} <= set(own.columns):
        closed = strategy_trades.filter(pl.col("exit_date").is_not_null()).height
        if flags := row_flags(own, closed):
            labels = {"warning": "; ".join(flags), **labels}
    return labels


WEIGHT_KEYS = ("rebalance_date", "ticker", "weight")
TEAR_SHEET_SCHEMA = {
    "strategy": pl.String,
    "path": pl.String,
    "bytes": pl.Int64,
    "generated_at": pl.Datetime("us", "UTC"),
    "inputs_digest": pl.String,
}


def page_digest(name: str, frames: dict[str, pl.DataFrame], research, extra: tuple) -> str:
    """The digest of everything one strategy's tear sheet shows: its rows of every table the
    page reads (``frames``: table -> frame with a ``strategy`` column, or whole), its research
    sections' inputs, the run's labels (``extra``) and the page code. A page whose digest is
    unchanged (and whose file is still there) is kept, not drawn again."""
    parts = []
    for table, frame in sorted(frames.items()):
        if frame is None:
            parts.append((table, None))
            continue
        own = frame.filter(pl.col("strategy") == name) if "strategy" in frame.columns else frame
        parts.append((table, frame_digest(own)))
    for table, frame in sorted(research.tables.items()):
        own = None
        if frame is not None:
            own = frame.filter(pl.col("strategy") == name) if "strategy" in frame.columns else frame
        parts.append((table, None if own is None else frame_digest(own)))
    sweep = [repr(s) for s in research.sweeps.values() if s.strategy == name]
    stamps = (research.weights_stamp.get(name), research.daily_stamp.get(name))
    code = code_version(tearsheet_module, plots, comparison_module)
    return digest(code, parts, sweep, stamps, *extra)


def _kept_pages(warehouse, out_dir: Path) -> dict[str, dict]:
    """The stored ``backtest.tear_sheets`` rows (this step's own last output, so not a declared
    read: it is no dependency) whose file is still there, by strategy."""
    if not warehouse.has_table("backtest.tear_sheets"):
        return {}
    stored = warehouse.read_table("backtest.tear_sheets")
    if "inputs_digest" not in stored.columns:
        return {}
    return {
        row["strategy"]: row
        for row in stored.iter_rows(named=True)
        if Path(row["path"]).exists() and Path(row["path"]).parent == out_dir.resolve()
    }


def _dataset_version(setting: pl.DataFrame, settings: pl.DataFrame) -> str | None:
    """The strategy's dataset version (a blend has no settings row: the run's)."""
    frame = setting if setting.height else settings
    if "dataset_version" not in frame.columns or frame.height == 0:
        return None
    return frame["dataset_version"][0]


PARALLEL_PAGES = 4  # from this many pages to draw, QUANT_PIPELINE_PAGE_WORKERS processes draw them


def page_workers(pages: int) -> int:
    """Processes drawing ``pages`` tear sheets: QUANT_PIPELINE_PAGE_WORKERS (at most the CPU
    count) from :data:`PARALLEL_PAGES` pages, else 1 (a worker's start costs ~2 s of CPU)."""
    if pages < PARALLEL_PAGES:
        return 1
    return default_workers(from_env().page_workers)


def _versions(name: str, settings: pl.DataFrame) -> tuple:
    """The dataset versions a page's labels show (its own, and the run's first)."""
    setting = settings.filter(pl.col("strategy") == name)
    every = (
        settings["dataset_version"].unique().sort().to_list()
        if "dataset_version" in settings.columns
        else None
    )
    return _dataset_version(setting, settings), every


def _page_job(name: str, frames: dict, research, rf: float, generated: datetime) -> PageJob:
    """One strategy's page inputs, each frame limited to it."""

    def own(table: str) -> pl.DataFrame:
        return frames[table].filter(pl.col("strategy") == name)

    daily = own("backtest.daily").drop("strategy").sort("date")
    settings = frames["backtest.settings"]
    setting = own("backtest.settings")
    benchmark = setting["benchmark"][0] if setting.height else BENCHMARK
    trades = own("backtest.trades")
    held = frames["held_through_suspect_moves"]
    return PageJob(
        name=name,
        benchmark=benchmark,
        daily=daily,
        quarterly=own("backtest.quarterly"),
        positions=own("backtest.positions").drop("strategy"),
        metrics=tearsheet_metrics(
            frames["backtest.metrics"], daily, name, f"{benchmark} (same dates)", rf
        ),
        trades=trades.select([c for c in TRADE_COLUMNS if c in trades.columns]),
        labels=_page_labels(daily, setting, settings, benchmark, rf, generated, trades),
        relative=own("backtest.relative_metrics"),
        sleeves=own("backtest.blend_attribution").drop("strategy"),
        lean=own("backtest.lean_statistics").select("statistic", "display"),
        suspect_moves=None if held is None else held.filter(pl.col("strategy") == name),
        exposures=research.exposures(name),
        multiple_testing=research.multiple_testing(name, _dataset_version(setting, settings)),
    )


@dg.asset(
    key=["backtest", "tear_sheets"],
    deps=TEAR_SHEET_READS.deps,
    group_name=GROUP,
    kinds={"duckdb", "polars", "html"},
    pool="warehouse",
)
def tear_sheets(
    config: TearSheetConfig, market: MarketDataResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """One self-contained HTML tear sheet per strategy under the reports directory."""
    read = TEAR_SHEET_READS.reader(warehouse.read_only())
    out_dir = Path(config.reports_dir) if config.reports_dir else from_env().reports_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    daily = read("backtest.daily")
    trades = read("backtest.trades")
    quarterly = read("backtest.quarterly")
    positions = read("backtest.positions")
    settings = read("backtest.settings")
    metrics = read("backtest.metrics")
    relative = read("backtest.relative_metrics")
    attribution = read("backtest.blend_attribution")
    lean = read("backtest.lean_statistics")
    rf = run_risk_free_rate(read("backtest.metric_settings"))
    held = (
        held_through(trades, read(SUSPECT_MOVES_TABLE))
        if read.has_table(SUSPECT_MOVES_TABLE)
        else None
    )
    research = ResearchPages(
        read, daily, read("portfolio.target_weights", columns=["strategy", *WEIGHT_KEYS])
    )
    kept_pages = _kept_pages(warehouse.read_only(), out_dir) if incremental_enabled(market) else {}
    frames = {
        "backtest.daily": daily,
        "backtest.trades": trades,
        "backtest.quarterly": quarterly,
        "backtest.positions": positions,
        "backtest.settings": settings,
        "backtest.metrics": metrics,
        "backtest.relative_metrics": relative,
        "backtest.blend_attribution": attribution,
        "backtest.lean_statistics": lean,
        "held_through_suspect_moves": held,
    }
    generated = datetime.now(UTC).replace(microsecond=0)
    written, jobs, reasons = {}, [], {}
    for name in daily["strategy"].unique().sort().to_list():
        job = _page_job(name, frames, research, rf, generated)
        inputs = page_digest(
            name, frames, research, (rf, job.benchmark, *_versions(name, settings))
        )
        stored = kept_pages.get(name)
        if stored is not None and stored["inputs_digest"] == inputs:
            written[name] = (name, stored["path"], stored["bytes"], stored["generated_at"], inputs)
            reasons[KEPT] = reasons.get(KEPT, 0) + 1
            continue
        reason = CHANGED if stored is not None else NEW
        reasons[reason] = reasons.get(reason, 0) + 1
        jobs.append((job, inputs))
    workers = page_workers(len(jobs))
    pages = process_map(workers)(draw_page, None, [job for job, _ in jobs])
    meta_charts = {}
    for (job, inputs), (page, charts) in zip(jobs, pages, strict=True):
        path = out_dir / f"{job.name}.html"
        path.write_text(page, encoding="utf-8")
        written[job.name] = (job.name, str(path.resolve()), path.stat().st_size, generated, inputs)
        for title, png in charts.items():
            meta_charts[f"{job.name}: {title}"] = plots.md_image(png, f"{job.name} {title}")
    written = [written[name] for name in sorted(written)]
    index_rows = [(row[0], Path(row[1]).name) for row in written]
    (out_dir / "index.html").write_text(_index_html(index_rows), encoding="utf-8")
    table = pl.DataFrame(written, schema=TEAR_SHEET_SCHEMA, orient="row")
    warehouse.get().replace_table("backtest.tear_sheets", table)
    return dg.MaterializeResult(
        metadata={
            **table_metadata("backtest.tear_sheets", table),
            "reports_dir": dg.MetadataValue.path(str(out_dir.resolve())),
            **{f"tear_sheet_{name}": dg.MetadataValue.path(row[1]) for row in written},
            "incremental": dg.MetadataValue.json(reasons),
            "pages_drawn": len(jobs),
            "drawing_processes": workers,
            **{key: dg.MetadataValue.md(md) for key, md in meta_charts.items()},
        }
    )


report_assets = [monthly_returns, relative_metrics_asset, tear_sheets]

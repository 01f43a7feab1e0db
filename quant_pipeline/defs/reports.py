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

from quant_pipeline.core.backtest.comparison import (
    BENCHMARK,
    monthly_summary,
    relative_metrics,
    sector_exposure,
    tearsheet_metrics,
)
from quant_pipeline.core.backtest.row_flags import row_flags
from quant_pipeline.core.data.suspect_moves import SUSPECT_MOVES_TABLE, held_through
from quant_pipeline.core.reporting import backtest_charts as plots
from quant_pipeline.core.reporting.tearsheet import render_tearsheet
from quant_pipeline.defs.metadata import markdown_table, table_metadata
from quant_pipeline.defs.research_pages import RESEARCH_TABLES, ResearchPages
from quant_pipeline.defs.resources import WarehouseResource
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


def strategy_charts(
    daily: pl.DataFrame, quarterly: pl.DataFrame, positions: pl.DataFrame, benchmark: str
) -> dict[str, bytes]:
    """The tear sheet's charts for one strategy (frames already filtered to it), by title."""
    charts = {
        f"Equity vs {benchmark} benchmark (log scale) and drawdown": plots.equity_chart_png(
            daily, f"Equity vs {benchmark} benchmark"
        ),
        "Drawdown": plots.drawdown_png(daily),
        "Monthly returns": plots.monthly_heatmap_png(daily),
    }
    if quarterly.height:
        charts["Quarterly returns"] = plots.quarterly_returns_png(quarterly)
    charts["Rolling 12-month Sharpe ratio"] = plots.rolling_sharpe_png(daily)
    if positions.height:
        charts["Sector exposure after each rebalance"] = plots.sector_exposure_png(
            sector_exposure(positions)
        )
    return charts


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


def _dataset_version(setting: pl.DataFrame, settings: pl.DataFrame) -> str | None:
    """The strategy's dataset version (a blend has no settings row: the run's)."""
    frame = setting if setting.height else settings
    if "dataset_version" not in frame.columns or frame.height == 0:
        return None
    return frame["dataset_version"][0]


@dg.asset(
    key=["backtest", "tear_sheets"],
    deps=TEAR_SHEET_READS.deps,
    group_name=GROUP,
    kinds={"duckdb", "polars", "html"},
    pool="warehouse",
)
def tear_sheets(config: TearSheetConfig, warehouse: WarehouseResource) -> dg.MaterializeResult:
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
    written, meta_charts, index_rows = [], {}, []
    generated = datetime.now(UTC).replace(microsecond=0)
    for name in daily["strategy"].unique().sort().to_list():
        own = daily.filter(pl.col("strategy") == name).drop("strategy").sort("date")
        setting = settings.filter(pl.col("strategy") == name)
        benchmark = setting["benchmark"][0] if setting.height else BENCHMARK
        charts = strategy_charts(
            own,
            quarterly.filter(pl.col("strategy") == name).drop("strategy"),
            positions.filter(pl.col("strategy") == name).drop("strategy"),
            benchmark,
        )
        strategy_trades = trades.filter(pl.col("strategy") == name)
        labels = _page_labels(own, setting, settings, benchmark, rf, generated, strategy_trades)
        page = render_tearsheet(
            name,
            tearsheet_metrics(metrics, own, name, f"{benchmark} (same dates)", rf),
            own,
            strategy_trades.select([c for c in TRADE_COLUMNS if c in strategy_trades.columns]),
            quarterly.filter(pl.col("strategy") == name),
            charts,
            labels=labels,
            relative=relative.filter(pl.col("strategy") == name),
            sleeves=attribution.filter(pl.col("strategy") == name).drop("strategy"),
            lean=lean.filter(pl.col("strategy") == name).select("statistic", "display"),
            suspect_moves=None if held is None else held.filter(pl.col("strategy") == name),
            exposures=research.exposures(name),
            multiple_testing=research.multiple_testing(name, _dataset_version(setting, settings)),
        )
        path = out_dir / f"{name}.html"
        path.write_text(page, encoding="utf-8")
        written.append((name, str(path.resolve()), path.stat().st_size, generated))
        index_rows.append((name, path.name))
        for title in list(charts)[:1] + ["Monthly returns"]:
            meta_charts[f"{name}: {title}"] = plots.md_image(charts[title], f"{name} {title}")
    (out_dir / "index.html").write_text(_index_html(index_rows), encoding="utf-8")
    table = pl.DataFrame(
        written,
        schema={
            "strategy": pl.String,
            "path": pl.String,
            "bytes": pl.Int64,
            "generated_at": pl.Datetime("us", "UTC"),
        },
        orient="row",
    )
    warehouse.get().replace_table("backtest.tear_sheets", table)
    return dg.MaterializeResult(
        metadata={
            **table_metadata("backtest.tear_sheets", table),
            "reports_dir": dg.MetadataValue.path(str(out_dir.resolve())),
            **{f"tear_sheet_{name}": dg.MetadataValue.path(path) for name, path, _, _ in written},
            **{key: dg.MetadataValue.md(md) for key, md in meta_charts.items()},
        }
    )


report_assets = [monthly_returns, relative_metrics_asset, tear_sheets]

"""``quant-pipeline``: run the pipeline, query the warehouse, and more, without opening the UI.

    quant-pipeline run                 materialize the whole chain, print the strategy comparison
    quant-pipeline sql "SELECT ..."    run a read-only query against the warehouse
    quant-pipeline tables              list the warehouse tables and their row counts
    quant-pipeline orders ...          orders for a capital amount or holdings file (+ packet)
    quant-pipeline notebook DEST       write a Jupyter notebook wired to the warehouse (read-only)
    quant-pipeline watch add|remove|list SYMBOL...   keep a watchlist and see its latest status
    quant-pipeline screen [--as-of D] [--rules FILE]  which names pass a universe screen, and why

Settings come from the ``QUANT_PIPELINE_*`` environment variables (see README); options given on
the command line override them for this run. The ``run`` flags are generated from the
:class:`~quant_pipeline.settings.Settings` model and reach the in-process materialization as
resource config (the process environment is never modified).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from quant_pipeline.app import orders_cli as cli_orders
from quant_pipeline.app import screen, watchlist
from quant_pipeline.settings import (
    Settings,
    SettingsError,
    add_settings_arguments,
    cli_overrides,
    from_env,
)

if TYPE_CHECKING:
    from quant_pipeline.storage.warehouse import Warehouse


_PERCENT_COLUMNS = {
    "total_return",
    "cagr",
    "annual_volatility",
    "max_drawdown",
    "benchmark_cagr",
    "excess_cagr",
}


def _format_cell(column: str, value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if column in _PERCENT_COLUMNS:
        return f"{value:.2%}"
    if column == "trading_days":
        return f"{value:,.0f}"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def format_comparison(comparison: pl.DataFrame) -> str:
    """A comparison table as fixed-width text: dates as ISO dates, percentages where expected."""
    columns = [c for c in comparison.columns if c != "strategy"]
    header = ["strategy", *columns]
    rows = []
    for record in comparison.iter_rows(named=True):
        row = [str(record["strategy"])]
        row.extend(_format_cell(col, record[col]) for col in columns)
        rows.append(row)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    ]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append(
            "  ".join(
                v.ljust(w) if i == 0 else v.rjust(w)
                for i, (v, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(lines)


_MAX_CAUSE_LINES = 20


def root_cause(error: object) -> str:
    """A step failure as its cause: ``Type: first line`` of the exception the step's code
    raised (Dagster's wrappers such as DagsterExecutionStepExecutionError skipped; a
    ``dg.Failure`` is its description alone), the rest of its message indented below (at most
    20 lines)."""
    while error is not None and getattr(error, "cls_name", "").startswith("Dagster"):
        inner = getattr(error, "cause", None) or getattr(error, "context", None)
        if inner is None:
            break
        error = inner
    if error is None:
        return "unknown error"
    lines = (getattr(error, "message", "") or "").strip().splitlines() or [""]
    head = lines[0]
    name = getattr(error, "cls_name", None)
    if name:  # Dagster's messages start "<module>.<Name>: " for exceptions outside builtins
        head = re.sub(rf"^(?:[\w.]+\.)?{re.escape(name)}: ", "", head)
    if name and name != "Failure":  # a Failure is its description
        head = f"{name}: {head}"
    rest = [f"    {line}" for line in lines[1 : 1 + _MAX_CAUSE_LINES]]
    if len(lines) > 1 + _MAX_CAUSE_LINES:
        rest.append(f"    ... ({len(lines) - 1 - _MAX_CAUSE_LINES} more lines)")
    return "\n".join([head, *rest])


def settings_resources(settings: Settings) -> dict[str, object]:
    """The warehouse and market resources configured with every field of ``settings``."""
    from quant_pipeline.defs.resources import (
        SETTINGS_FIELDS,
        MarketDataResource,
        WarehouseResource,
    )

    config: dict[str, object] = {}
    for name, value in settings.model_dump(include=set(SETTINGS_FIELDS)).items():
        if value is None or isinstance(value, int):
            config[name] = value
        else:
            config[name] = list(value) if isinstance(value, tuple) else str(value)
    return {
        "warehouse": WarehouseResource(path=str(settings.warehouse)),
        "market": MarketDataResource(**config),
    }


def _say(message: str) -> None:
    print(f"quant-pipeline: {message}", file=sys.stderr, flush=True)


def failure_lines(result) -> list[str]:
    """One line per failed step, ``step <key> failed: <root cause>``; a run that failed before
    any step (a resource that could not start, e.g. a warehouse busy past the timeout) gives
    ``run failed: <root cause>``."""
    lines = [
        f"step {event.step_key} failed: {root_cause(event.step_failure_data.error)}"
        for event in result.all_events
        if event.is_step_failure
    ]
    if lines:
        return lines
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None)
        if error is not None:
            return [f"run failed: {root_cause(error)}"]
    return ["run failed: unknown error (see the Dagster log above)"]


def _materialize(settings: Settings, resources: dict[str, object] | None, log_level: str):
    """Materialize every asset in-process as a run of the project's Dagster instance."""
    import dagster as dg

    from quant_pipeline.app.instance import cli_run_tags, fail_orphaned_cli_runs, project_instance
    from quant_pipeline.definitions import all_assets, asset_checks, build_resources

    with project_instance(settings) as instance:
        for run_id in fail_orphaned_cli_runs(instance):
            _say(f"marked run {run_id} failed: its quant-pipeline run process is gone")
        return dg.materialize(
            [*all_assets, *asset_checks],
            resources=build_resources(**{**settings_resources(settings), **(resources or {})}),
            instance=instance,
            raise_on_error=False,
            tags=cli_run_tags(),
            # Dagster's DEBUG step events would bury the comparison table; warnings still show.
            run_config={
                "loggers": {"console": {"config": {"log_level": log_level}}},
                # the run's risk-free rate (flag or env var) is the metrics asset's run config
                "ops": {
                    "backtest__metrics": {
                        "config": {
                            "risk_free_rate": settings.risk_free_rate,
                            "common_window_tolerance_days": settings.common_window_tolerance_days,
                        }
                    }
                },
            },
        )


def run_pipeline(
    resources: dict[str, object] | None = None,
    log_level: str = "WARNING",
    settings: Settings | None = None,
) -> int:
    """Materialize every asset in-process; return the process exit status.

    The run holds the warehouse's run lock from before its first step to after its publish, so
    it waits for (and then excludes) any other run on the same warehouse: another
    ``quant-pipeline run``, a UI, schedule or sensor run. ``settings`` (default: the env vars)
    become the warehouse and market resource config; ``resources`` replace those (tests inject
    an offline market source)."""
    from quant_pipeline.app.instance import CLI_PROGRAM
    from quant_pipeline.storage.run_lock import hold_run_lock
    from quant_pipeline.storage.warehouse import Warehouse

    settings = settings or from_env()
    _say(f"source={settings.source} warehouse={settings.warehouse}")
    # Imported before the lock: between taking it and the run appearing in the instance, the
    # UI's queue sees no run in progress and may start one (which then waits on the lock).
    import quant_pipeline.definitions  # noqa: F401

    with hold_run_lock(settings.warehouse, CLI_PROGRAM, on_wait=_say) as acquired:
        held_from = datetime.now(UTC)
        if acquired.waited_for is not None:
            _say(f"waited {acquired.waited:.1f} s for {acquired.waited_for.describe()}")
        result = _materialize(settings, resources, log_level)
        if not result.success:
            for line in failure_lines(result):
                print(line, file=sys.stderr)
            return 1
        warehouse = Warehouse(settings.warehouse)
        # Readers (sql, tables, orders, notebooks) open this copy: they never block a run.
        published = warehouse.publish()
        report = _report(settings, Warehouse(published, read_only=True), published)
        held_to = datetime.now(UTC)
    _say(
        f"run {result.run_id} held the warehouse from {held_from.isoformat()} to "
        f"{held_to.isoformat()} (waited {acquired.waited:.1f} s before)"
    )
    print(report)
    return 0


def _report(settings: Settings, warehouse: Warehouse, published: Path) -> str:
    """The run's printout: the comparison tables, data notes and where to look next."""
    comparison = warehouse.read_table("backtest.comparison")
    common = warehouse.read_table("backtest.comparison_common_window")
    lines = [
        f"Strategy comparison, {settings.source} data, each strategy over its own window "
        "(benchmark_cagr and excess_cagr: the benchmark over those same dates):",
        format_comparison(comparison),
        *data_notes(warehouse),
    ]
    if common.height:
        start, end = common["start"][0], common["end"][0]
        lines.append(
            f"\nCommon window {start} to {end}: the strategies starting within "
            f"{settings.common_window_tolerance_days} days of the median start, and the "
            "benchmark over the same dates (flags say why a strategy is left out):"
        )
        lines.append(format_comparison(common))
    lines.append(
        f"\nEvery table is in {settings.warehouse}; try: quant-pipeline sql "
        "\"SELECT * FROM backtest.metrics WHERE strategy = 'benchmark'\""
    )
    lines.append(f"Tear sheets: {settings.reports_dir / 'index.html'}")
    lines.append(f"Readers' copy of this run: {published}")
    return "\n".join(lines)


_LIVE_HELP = (
    "read the live warehouse file instead of the copy published by the last completed run "
    "(may wait for a running step and see a run half-written)"
)


def _add_reader_parsers(sub: argparse._SubParsersAction) -> None:
    """``sql`` and ``tables``: they read the published copy of the last completed run."""
    sql = sub.add_parser("sql", help="run a read-only SQL query against the warehouse")
    sql.add_argument("query")
    add_settings_arguments(sql, only=("warehouse",))
    sql.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    sql.add_argument("--live", action="store_true", help=_LIVE_HELP)
    tables = sub.add_parser("tables", help="list warehouse tables and row counts")
    add_settings_arguments(tables, only=("warehouse",))
    tables.add_argument("--live", action="store_true", help=_LIVE_HELP)


def _read(args: argparse.Namespace, warehouse: Warehouse) -> int:
    """Run ``sql`` or ``tables`` against ``warehouse`` and print the result."""
    if args.command == "tables":
        _print_frame(warehouse.tables())
        return 0
    frame = warehouse.query(args.query)
    if args.csv:
        sys.stdout.write(frame.write_csv())
    else:
        _print_frame(frame)
    return 0


def data_notes(warehouse) -> list[str]:
    """Lines for the run output: strategies skipped for missing inputs or unknown profile fields
    and the notes on partly known ones (backtest.labels), input
    rows and files the source set aside (raw.rejected_rows, per rule) and raw rows refused by
    curation (curated.rejected_prices, per reason)."""
    lines: list[str] = []
    if warehouse.has_table("backtest.labels"):
        skipped = warehouse.read_table("backtest.labels", filters={"label": "skipped"})
        if skipped.height:
            lines.append(
                f"\nSkipped {skipped.height} strategies (missing inputs or profile fields):"
            )
            lines += [f"  {r['strategy']}: {r['value']}" for r in skipped.iter_rows(named=True)]
        notes = warehouse.read_table("backtest.labels", filters={"label": "profile_fields"})
        if notes.height:
            lines.append("\nExchange / country rules on partly unknown profiles:")
            lines += [f"  {r['strategy']}: {r['value']}" for r in notes.iter_rows(named=True)]
    if warehouse.has_table("raw.rejected_rows"):
        rejected = warehouse.read_table("raw.rejected_rows", columns=["dataset", "rule"])
        if rejected.height:
            counts = rejected.group_by("dataset", "rule").len().sort("len", descending=True)
            lines.append(
                f"\nSet aside {rejected.height} input rows or files (see raw.rejected_rows):"
            )
            lines += [f"  {n:>8}  {d}: {rule}" for d, rule, n in counts.iter_rows()]
    if warehouse.has_table("curated.rejected_prices"):
        rejected = warehouse.read_table("curated.rejected_prices", columns=["reason"])
        if rejected.height:
            counts = rejected.group_by("reason").len().sort("len", "reason", descending=True)
            lines.append(
                f"\nSet aside {rejected.height} raw price rows (see curated.rejected_prices):"
            )
            lines += [f"  {n:>8}  {reason}" for reason, n in counts.iter_rows()]
    return lines


def _print_frame(frame: pl.DataFrame) -> None:
    with pl.Config(tbl_rows=100, tbl_cols=30, fmt_str_lengths=40, tbl_width_chars=200):
        print(frame)


def main(argv: Sequence[str] | None = None, *, resources: dict[str, object] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="quant-pipeline", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="materialize the full chain and print the comparison")
    add_settings_arguments(run)
    run.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="Dagster console log level (default WARNING)",
    )

    _add_reader_parsers(sub)

    cli_orders.add_parser(sub)

    watchlist.add_parser(sub)
    screen.add_parser(sub)

    nb = sub.add_parser("notebook", help="write a notebook that reads the warehouse read-only")
    nb.add_argument("dest", help="notebook file (.ipynb) or folder")
    add_settings_arguments(nb, only=("warehouse",))
    nb.add_argument(
        "--strategy", default="magic_formula", help="strategy shown (default %(default)s)"
    )
    nb.add_argument("--factor", default="earnings_yield", help="factor shown (default %(default)s)")

    args = parser.parse_args(argv)
    try:
        settings = from_env(overrides=cli_overrides(args), origin="command line")
        if args.command == "run":
            return run_pipeline(resources, log_level=args.log_level, settings=settings)
        if args.command == "orders":
            return cli_orders.run(args, settings)
        if args.command == "notebook":
            from quant_pipeline.app.notebook import write_notebook

            path = write_notebook(Path(args.dest), settings.warehouse, args.strategy, args.factor)
            print(f"Notebook: {path} (reads {settings.warehouse.resolve()} read-only)")
            print(f"Open it with: jupyter lab {path}")
            return 0
        from quant_pipeline.storage.warehouse import Warehouse

        warehouse = Warehouse(settings.warehouse)
        if args.command in ("sql", "tables"):
            return _read(args, warehouse if args.live else warehouse.for_readers())
        if args.command == "screen":
            return screen.run(args, warehouse)
        if args.command == "watch":
            return watchlist.run(args, warehouse)
    except SettingsError as exc:
        print(f"quant-pipeline: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the reason goes to stderr, not a traceback wall
        print(f"quant-pipeline {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

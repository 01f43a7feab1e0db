"""``quant-pipeline notebook DEST``: a Jupyter notebook pre-wired to the warehouse, read-only.

The notebook (nbformat 4, written as plain JSON: no Jupyter package is needed to write it) shows
the latest strategy comparison, one strategy's equity curve against its benchmark and its latest
trades, and one factor's information coefficient over time. Every query opens a read-only DuckDB
connection and closes it at once: DuckDB lets no process write a file that another process holds
open, even read-only, so a notebook that kept its connection would make the next run fail.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

DEFAULT_STRATEGY = "magic_formula"
DEFAULT_FACTOR = "earnings_yield"


def _md(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": text.strip("\n")}


def _code(text: str) -> dict:
    return {
        "cell_type": "code",
        "metadata": {},
        "execution_count": None,
        "outputs": [],
        "source": text.strip("\n"),
    }


# The first code cell; {warehouse}, {strategy} and {factor} are filled in (as Python literals).
SETUP_CELL = '''
import os

import duckdb
import matplotlib.pyplot as plt
import polars as pl

WAREHOUSE = os.environ.get("QUANT_PIPELINE_WAREHOUSE") or {warehouse}
STRATEGY = {strategy}  # any strategy in backtest.metrics
FACTOR = {factor}  # any factor in research.factor_ic


def q(sql, params=None):
    """Run one read-only query; the connection is closed before the result is returned."""
    with duckdb.connect(WAREHOUSE, read_only=True) as con:
        return con.sql(sql, params=params).pl()


pl.Config.set_tbl_rows(30)
pl.Config.set_tbl_width_chars(180)
pl.Config.set_fmt_str_lengths(40)
print("warehouse:", WAREHOUSE)
'''


def _cells(setup: str) -> list[dict]:
    """Markdown and code cells in reading order; ``setup`` is the filled-in first code cell."""
    return [
        _md(
            """
# quant_pipeline: the latest results

Written by `quant-pipeline notebook`. Every query below opens the warehouse **read-only** and
closes it at once, so this notebook never blocks a pipeline run (DuckDB lets no process write a
file that another process holds open). Change `STRATEGY` or `FACTOR` and re-run.
"""
        ),
        _code(setup),
        _md("## Strategy comparison (the table `quant-pipeline run` prints)"),
        _code(
            """
comparison = q("SELECT * FROM backtest.comparison ORDER BY strategy = 'benchmark', strategy")
comparison
"""
        ),
        _md("## One strategy: equity against its benchmark, and its latest trades"),
        _code(
            """
daily = q(
    "SELECT date, equity, benchmark_equity, drawdown FROM backtest.daily "
    "WHERE strategy = ? ORDER BY date",
    [STRATEGY],
)
assert daily.height > 0, f"no backtest.daily rows for strategy {STRATEGY!r}"
fig, ax = plt.subplots(figsize=(9, 4))
ax.plot(daily["date"], daily["equity"], label=STRATEGY)
ax.plot(daily["date"], daily["benchmark_equity"], label="benchmark")
ax.set_ylabel("growth of 1")
ax.set_title(f"{STRATEGY}: {daily['date'].min()} to {daily['date'].max()}")
ax.legend()
plt.show()
"""
        ),
        _code(
            """
trades = q(
    "SELECT ticker, entry_date, exit_date, entry_price, exit_price, return, sector "
    "FROM backtest.trades WHERE strategy = ? ORDER BY entry_date DESC, ticker LIMIT 20",
    [STRATEGY],
)
trades
"""
        ),
        _md("## One factor: information coefficient per rebalance date"),
        _code(
            """
ic = q(
    "SELECT rebalance_date, ic, n FROM research.factor_ic "
    "WHERE factor = ? AND ic IS NOT NULL ORDER BY rebalance_date",
    [FACTOR],
)
assert ic.height > 0, f"no research.factor_ic rows for factor {FACTOR!r}"
ic = ic.with_columns(pl.col("ic").rolling_mean(12, min_samples=1).alias("ic_12_period_mean"))
fig, ax = plt.subplots(figsize=(9, 3.5))
ax.bar(ic["rebalance_date"], ic["ic"], width=20, label="IC")
ax.plot(ic["rebalance_date"], ic["ic_12_period_mean"], color="black", label="12-period mean")
ax.axhline(0, color="grey", linewidth=0.8)
ax.set_ylabel("Spearman IC")
ax.set_title(f"{FACTOR}: mean IC {ic['ic'].mean():.3f} over {ic.height} dates")
ax.legend()
plt.show()
q("SELECT * FROM research.factor_summary WHERE factor = ?", [FACTOR])
"""
        ),
    ]


def notebook(
    warehouse: Path, strategy: str = DEFAULT_STRATEGY, factor: str = DEFAULT_FACTOR
) -> dict:
    """The notebook as an nbformat-4 dict reading ``warehouse`` (an absolute path is baked in;
    the env var ``QUANT_PIPELINE_WAREHOUSE`` overrides it when the notebook runs)."""
    setup = SETUP_CELL.format(
        warehouse=repr(str(warehouse)), strategy=repr(strategy), factor=repr(factor)
    )
    return {
        "cells": _cells(setup),
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def write_notebook(
    dest: Path, warehouse: Path, strategy: str = DEFAULT_STRATEGY, factor: str = DEFAULT_FACTOR
) -> Path:
    """Write the notebook to ``dest`` (a folder, or a path without a suffix, gets
    ``quant_pipeline.ipynb``); return the path.

    Written to a temporary file and renamed into place, so a half-written notebook never exists.
    """
    dest = Path(dest)
    if dest.is_dir() or not dest.suffix:
        dest = dest / "quant_pipeline.ipynb"
    if dest.suffix != ".ipynb":
        raise ValueError(f"{dest}: a notebook file name ends in .ipynb")
    dest.parent.mkdir(parents=True, exist_ok=True)
    cells = notebook(warehouse.resolve(), strategy, factor)
    for number, cell in enumerate(cells["cells"], start=1):
        cell["id"] = f"cell-{number}"  # nbformat 4.5 cell ids
        cell["source"] = cell["source"].splitlines(keepends=True)  # stored as lines
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(cells, handle, indent=1)
        handle.write("\n")
    os.replace(tmp, dest)
    return dest

"""The research sections of a tear sheet: exposures, attribution and a swept strategy's tests.

The research tables are made by the ``research_guards`` assets, which ``quant-pipeline run``
does not materialize; a tear sheet must never show research about another backtest. Each
research table stamps what it was computed from - research.exposures the fingerprint of the
strategy's target weights, research.attribution that of its daily returns, research.sweep the
dataset version of the curated inputs - and a section is shown only when the stamp equals the
one of the rows the tear sheet shows; otherwise the page says the section is missing or stale.
"""

from __future__ import annotations

import polars as pl

from quant_pipeline.config.sweeps import load_sweeps
from quant_pipeline.core.data.dataset_version import fingerprints
from quant_pipeline.core.reporting.overfitting_charts import heatmap_png
from quant_pipeline.core.reporting.research_charts import tilts_png
from quant_pipeline.core.reporting.tearsheet import ExposureSection, MultipleTestingSection
from quant_pipeline.core.research.sweeps import SweepSpec

WEIGHTS_FINGERPRINT = ("rebalance_date", "ticker", "weight")
DAILY_FINGERPRINT = ("date", "portfolio_return", "benchmark_return")
RESEARCH_TABLES = (
    "research.exposures",
    "research.sector_exposures",
    "research.attribution",
    "research.sweep",
)
RUN_RESEARCH = "materialize research_guards_job (research/exposures, research/attribution)"


def _optional(read, table: str) -> pl.DataFrame | None:
    return read(table) if read.has_table(table) else None


def _stamped(frame: pl.DataFrame | None, name: str, column: str, stamp: str | None):
    """The strategy's rows of ``frame`` and whether their ``column`` equals ``stamp``."""
    if frame is None or column not in frame.columns:
        return None, False
    own = frame.filter(pl.col("strategy") == name)
    if own.is_empty():
        return None, False
    return own, stamp is not None and bool((own[column] == stamp).all())


class ResearchPages:
    """Builds each strategy's research sections from the research tables, checked fresh."""

    def __init__(
        self,
        read,
        daily: pl.DataFrame,
        weights: pl.DataFrame,
        sweeps: dict[str, SweepSpec] | None = None,
    ) -> None:
        self.tables = {t: _optional(read, t) for t in RESEARCH_TABLES}
        held = weights.filter(pl.col("weight") > 0)
        self.weights_stamp = dict(fingerprints(held, "strategy", WEIGHTS_FINGERPRINT).iter_rows())
        self.daily_stamp = dict(fingerprints(daily, "strategy", DAILY_FINGERPRINT).iter_rows())
        self.sweeps = load_sweeps() if sweeps is None else sweeps

    def exposures(self, name: str) -> ExposureSection:
        """Beta, tilts and sectors when research.exposures is about the strategy's current
        weights, the attribution when research.attribution is about its current returns."""
        missing = []
        stamp = self.weights_stamp.get(name)
        exposures, fresh = _stamped(
            self.tables["research.exposures"], name, "weights_fingerprint", stamp
        )
        sectors, sectors_fresh = _stamped(
            self.tables["research.sector_exposures"], name, "weights_fingerprint", stamp
        )
        if stamp is None:
            exposures = sectors = None
        elif exposures is None:
            missing.append(f"Beta, tilts and sector weights: not computed yet ({RUN_RESEARCH}).")
        elif not (fresh and sectors_fresh):
            missing.append(
                "Beta, tilts and sector weights: left out, research.exposures was computed "
                f"from other target weights than this backtest's ({RUN_RESEARCH})."
            )
            exposures = sectors = None
        attribution, fresh = _stamped(
            self.tables["research.attribution"],
            name,
            "daily_fingerprint",
            self.daily_stamp.get(name),
        )
        if attribution is None:
            missing.append(f"Returns-based attribution: not computed yet ({RUN_RESEARCH}).")
        elif not fresh:
            missing.append(
                "Returns-based attribution: left out, research.attribution was computed from "
                f"other daily returns than this backtest's ({RUN_RESEARCH})."
            )
            attribution = None
        chart = (
            tilts_png(exposures, f"{name}: style tilts and beta") if exposures is not None else None
        )
        return ExposureSection(exposures, sectors, attribution, chart, tuple(missing))

    def multiple_testing(
        self, name: str, dataset_version: str | None
    ) -> MultipleTestingSection | None:
        """The section of a strategy some sweep file sweeps (None for the others)."""
        sweep = next((s for s in self.sweeps.values() if s.strategy == name), None)
        if sweep is None:
            return None
        table = self.tables["research.sweep"]
        rows = None if table is None else table.filter(pl.col("sweep") == sweep.name)
        parameters = tuple(sweep.parameters)
        if rows is None or rows.is_empty():
            note = f"{sweep.name}: not run yet (materialize research_guards_job, research/sweep)."
            return MultipleTestingSection(sweep.name, pl.DataFrame(), parameters, missing=note)
        versions = set(rows["dataset_version"]) if "dataset_version" in rows.columns else set()
        if dataset_version is None or versions != {dataset_version}:
            note = (
                f"{sweep.name}: left out, research.sweep was run on other curated data than this "
                "backtest (materialize research/sweep again)."
            )
            return MultipleTestingSection(sweep.name, pl.DataFrame(), parameters, missing=note)
        x, y, metric = sweep.heatmap
        title = f"{sweep.name}: mean {metric} by {x} and {y}"
        return MultipleTestingSection(
            sweep.name, rows, parameters, heatmap_png(rows, x, y, metric, title), title
        )

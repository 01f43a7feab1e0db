"""Incremental runs give exactly the tables a full recompute gives (issue 14).

One small demo warehouse goes through four changes, as a user's would: a weekly refresh (one
new week of prices, no new rebalance date), a changed strategy YAML, a restated fundamental and
a week that brings a new rebalance date. After each change the curated tables are refreshed
once, the warehouse is copied, and the downstream assets (factors, portfolios, backtests,
reports, research) run on the original with reuse on (``incremental`` default) and on the copy
with ``incremental=False`` (everything recomputed). Every table of both warehouses must be
equal, row for row and bit for bit; and the incremental run must actually have kept something
(its metadata says what and why).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

import quant_pipeline.config.strategies as strategy_config
from quant_pipeline.core.data.fingerprints import CHANGED, KEPT, NEW
from quant_pipeline.definitions import all_assets, asset_checks
from quant_pipeline.defs.resources import MarketDataResource, WarehouseResource
from quant_pipeline.storage.warehouse import Warehouse

START = "2021-01-01"
TICKERS = 24
# The weeks are ones without a dividend in this market: a dividend restates the ticker's whole
# adj_close history (as a vendor does), which changes every later date's inputs (see
# test_dividend_week_recomputes_every_date).
E0 = date(2026, 11, 17)  # the first full run
E1 = date(2026, 11, 24)  # one week later, same month: no new rebalance date
E2 = date(2026, 12, 4)  # crosses 1 December: a new monthly rebalance date
UPSTREAM = dg.AssetSelection.groups("ingestion", "curated")
DOWNSTREAM = dg.AssetSelection.all() - dg.AssetSelection.groups(
    "ingestion", "curated", "orders", "research_guards"
)
# columns that record when a row was loaded or a run happened, not what it holds
TIME_COLUMNS = {"ingested_at", "vintage_at", "written_at", "generated_at", "run_at", "audited_at"}
# where a file was written: each warehouse here has its own reports folder
PATH_COLUMNS = {"backtest.tear_sheets": {"path"}}


def _market(end: date, incremental: bool = True) -> MarketDataResource:
    return MarketDataResource(
        source="demo",
        demo_tickers=TICKERS,
        demo_start=START,
        demo_end=end.isoformat(),
        incremental=incremental,
    )


def _run(path: Path, selection, end: date, incremental: bool = True) -> dg.ExecuteInProcessResult:
    with dg.DagsterInstance.ephemeral() as instance, pytest.MonkeyPatch.context() as env:
        env.setenv("QUANT_PIPELINE_REPORTS_DIR", str(path.parent / "reports"))
        result = dg.materialize(
            [*all_assets, *asset_checks],
            selection=selection,
            resources={
                "warehouse": WarehouseResource(path=str(path)),
                "market": _market(end, incremental),
            },
            instance=instance,
            raise_on_error=True,
        )
    assert result.success
    return result


def _tables(path: Path) -> dict[str, pl.DataFrame]:
    wh = Warehouse(path, read_only=True)
    out = {}
    for schema, table in wh.tables().select("schema", "table").iter_rows():
        name = f"{schema}.{table}"
        frame = wh.read_table(name)
        dropped = TIME_COLUMNS | PATH_COLUMNS.get(name, set())
        frame = frame.drop([c for c in frame.columns if c in dropped])
        sortable = [c for c, t in frame.schema.items() if not t.is_nested()]
        out[name] = frame.sort(sortable, nulls_last=True) if sortable else frame
    return out


def _differences(left: Path, right: Path) -> list[str]:
    a, b = _tables(left), _tables(right)
    problems = [f"{t}: only in one warehouse" for t in sorted(set(a) ^ set(b))]
    for table in sorted(set(a) & set(b)):
        x, y = a[table], b[table]
        if x.columns != y.columns or x.height != y.height:
            problems.append(f"{table}: {x.shape} {x.columns} vs {y.shape} {y.columns}")
        elif not x.equals(y):
            bad = [c for c in x.columns if not x[c].equals(y[c])]
            problems.append(f"{table}: columns {bad} differ")
    return problems


STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")


def _page_differences(left: Path, right: Path) -> list[str]:
    """Tear sheets that differ (a kept page says when it was drawn: that stamp is left out)."""
    pages = {p.name for p in left.glob("*.html")} | {p.name for p in right.glob("*.html")}
    problems = []
    for page in sorted(pages):
        a, b = left / page, right / page
        if not (a.exists() and b.exists()):
            problems.append(f"tear sheet {page}: only in one reports folder")
        elif STAMP.sub("", a.read_text()) != STAMP.sub("", b.read_text()):
            problems.append(f"tear sheet {page} differs")
    return problems


def _reuse(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, int]:
    """The ``incremental`` metadata (key count per reason) of ``asset``'s materialization."""
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        if mat.asset_key == dg.AssetKey(asset.split(".")):
            return dict(mat.metadata["incremental"].value)
    raise AssertionError(f"{asset} was not materialized")


@dataclass
class Phase:
    differences: list[str]
    reuse: dict[str, dict[str, int]] = field(default_factory=dict)


WATCHED = (
    "factors.values",
    "factors.scores",
    "portfolio.signal_weights",
    "portfolio.target_weights",
    "backtest.daily",
    "backtest.lean_statistics",
    "backtest.tear_sheets",
    "backtest.benchmarks",
    "research.factor_ic",
    "research.luck",
    "universe.screened",
)


def _phase(path: Path, end: dict, tmp: Path, name: str, upstream=UPSTREAM) -> Phase:
    """Refresh the curated tables, copy the warehouse, run downstream both ways, compare."""
    _run(path, upstream, end["end"])
    full = tmp / f"{name}_full" / "quant.duckdb"
    full.parent.mkdir()
    shutil.copyfile(path, full)
    incremental = _run(path, DOWNSTREAM, end["end"])
    _run(full, DOWNSTREAM, end["end"], incremental=False)
    differences = _differences(path, full)
    differences += _page_differences(path.parent / "reports", full.parent / "reports")
    return Phase(differences, {a: _reuse(incremental, a) for a in WATCHED})


@pytest.fixture(scope="module")
def phases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Phase]:
    tmp = tmp_path_factory.mktemp("incremental")
    path = tmp / "main" / "quant.duckdb"
    path.parent.mkdir()
    _run(path, dg.AssetSelection.all() - dg.AssetSelection.groups("research_guards"), E0)
    out = {"weekly": _phase(path, {"end": E1}, tmp, "weekly")}

    strategies = tmp / "strategies"
    shutil.copytree(strategy_config.STRATEGIES_DIR, strategies)
    spec = strategies / "magic_formula.yaml"
    spec.write_text(spec.read_text().replace("top_n: 30", "top_n: 20"))
    with pytest.MonkeyPatch.context() as env:
        env.setattr(strategy_config, "STRATEGIES_DIR", strategies)
        out["strategy"] = _phase(path, {"end": E1}, tmp, "strategy")

        wh = Warehouse(path)
        raw = wh.read_raw("fundamentals")
        row = raw.filter(pl.col("item") == "revenue").sort("report_date").row(-40, named=True)
        restated = raw.filter(
            (pl.col("ticker") == row["ticker"])
            & (pl.col("period_end") == row["period_end"])
            & (pl.col("item") == "revenue")
        ).with_columns(pl.col("value") * 1.25, pl.lit(datetime.now(UTC)).alias("ingested_at"))
        wh.write_raw("fundamentals", restated)
        # curated only: a demo refresh would restate the row back to the source's value
        curated = dg.AssetSelection.groups("curated")
        out["restated"] = _phase(path, {"end": E1}, tmp, "restated", curated)
        out["rebalance"] = _phase(path, {"end": E2}, tmp, "rebalance")
    return out


@pytest.mark.parametrize("name", ["weekly", "strategy", "restated", "rebalance"])
def test_incremental_run_equals_full_recompute(phases: dict[str, Phase], name: str) -> None:
    assert phases[name].differences == []


def test_weekly_refresh_keeps_the_factor_dates(phases: dict[str, Phase]) -> None:
    """No dividend and no new rebalance date this week: every factor date and score is kept,
    and the weights of the strategies that read nothing else (signal strategies and weightings
    that read prices recompute). The refresh stores a new profile vintage (the demo's shares
    move every week), but a market cap that falls back on a profile uses the first one on file,
    which a refresh never moves."""
    reuse = phases["weekly"].reuse
    assert set(reuse["factors.values"]) == {KEPT}
    assert set(reuse["factors.scores"]) == {KEPT}
    assert reuse["portfolio.target_weights"][KEPT] >= 4


def test_changed_strategy_rescores_only_itself(phases: dict[str, Phase]) -> None:
    reuse = phases["strategy"].reuse
    assert set(reuse["factors.values"]) == {KEPT}
    assert reuse["factors.scores"][KEPT] > 0
    assert 0 < reuse["factors.scores"][CHANGED] < reuse["factors.scores"][KEPT]


def test_changed_strategy_reruns_only_itself_and_its_blend(phases: dict[str, Phase]) -> None:
    """magic_formula's YAML changed: its weights, its backtest, blend_core's (a sleeve) and
    their two tear sheets are recomputed; the other strategies are kept."""
    reuse = phases["strategy"].reuse
    assert reuse["portfolio.signal_weights"] == {KEPT: 4}
    assert reuse["portfolio.target_weights"][CHANGED] == 1
    assert reuse["backtest.daily"][CHANGED] == 2
    assert reuse["backtest.daily"][KEPT] >= 8
    # LEAN's statistics follow their backtest's digest (a strategy not backtested has none)
    assert reuse["backtest.lean_statistics"][CHANGED] == 2
    assert reuse["backtest.lean_statistics"][KEPT] >= 7
    assert reuse["backtest.tear_sheets"][KEPT] >= 7


def test_restated_fundamental_recomputes_the_dates_after_it(phases: dict[str, Phase]) -> None:
    values = phases["restated"].reuse["factors.values"]
    assert values[CHANGED] > 0 and values[KEPT] > 0


def test_new_rebalance_date_is_computed_and_the_rest_kept(phases: dict[str, Phase]) -> None:
    values = phases["rebalance"].reuse["factors.values"]
    assert values[NEW] == 1
    assert values[KEPT] > 0


def test_changed_strategy_keeps_the_research_of_the_others(phases: dict[str, Phase]) -> None:
    """magic_formula's YAML changed, no data did: the benchmarks, the universe screen and the
    factors' diagnostics are kept; only magic_formula's composite and luck baseline are
    recomputed."""
    reuse = phases["strategy"].reuse
    assert set(reuse["backtest.benchmarks"]) == {KEPT}
    assert reuse["universe.screened"] == {KEPT: 1}
    assert reuse["research.factor_ic"][CHANGED] == 1
    assert reuse["research.factor_ic"][KEPT] >= 10
    assert reuse["research.luck"][CHANGED] == 1
    assert reuse["research.luck"][KEPT] >= 2


def test_new_prices_recompute_the_research(phases: dict[str, Phase]) -> None:
    """A week of new prices changes every benchmark day and today's screen; the factor
    diagnostics end at the last rebalance date, so they are kept until a new date comes."""
    reuse = phases["weekly"].reuse
    for asset in ("backtest.benchmarks", "universe.screened"):
        assert KEPT not in reuse[asset], asset
    assert set(reuse["research.factor_ic"]) == {KEPT}
    assert CHANGED in phases["rebalance"].reuse["research.factor_ic"]

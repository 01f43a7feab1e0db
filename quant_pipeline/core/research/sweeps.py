"""Parameter sweeps: one strategy file, a grid of changes, every variant through the same chain.

A sweep file (``quant_pipeline/strategies/sweeps/*.yaml``, see docs/research.md) names a base
strategy and a grid of dotted paths into its YAML document::

    strategy: multifactor_smallcap
    grid:
      portfolio.top_n: [10, 20, 30, 50]
      portfolio.max_sector_weight: [0.2, 0.3, 1.0]
      rebalance: [monthly, quarterly]
      scoring.group_weights:              # special: one weight per scoring group
        - {quality: 0.35, growth: 0.35, value: 0.15, momentum: 0.15}
    heatmap: {x: top_n, y: max_sector_weight, metric: sharpe_ratio}
    walk_forward: {objective: sharpe_ratio, train_years: 5, test_years: 1, window: expanding}

Every combination becomes a strategy document validated by ``parse_strategy`` exactly like a
shipped file (a bad value fails naming the sweep file, the variant and the field). Variants
are run by :func:`run_sweep`: scores are computed once per distinct (universe, scoring) over
every date any variant needs (scores are per date, so a quarterly variant reuses the monthly
dates' scores) and reused by every variant that shares them; factor values come in computed once.
Each variant's weights are then traded by the share simulation on a price matrix laid out once
for all of them (``core/backtest/price_matrix.py``: the same account as ``simulate``, daily
rows only), serially or spread over processes by the caller (``map_runs``).
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from quant_pipeline.core.backtest.metrics import performance_metrics
from quant_pipeline.core.backtest.price_matrix import PriceMatrix, simulate_daily
from quant_pipeline.core.backtest.share_simulation import TradingModel
from quant_pipeline.core.research.overfitting import (
    DEFAULT_SPLITS,
    OverfittingInputError,
    OverfittingResult,
    common_dates,
    deflate_trials,
    probability_of_backtest_overfitting,
)
from quant_pipeline.core.research.walk_forward import OBJECTIVES
from quant_pipeline.core.strategies.scoring import factor_zscores, score, zscore_key
from quant_pipeline.core.strategies.spec import (
    StrategyConfigError,
    StrategySpec,
    parse_strategy,
)
from quant_pipeline.core.strategies.target_weights import ranked_names, selected_weights
from quant_pipeline.core.strategies.weighting import (
    COVARIANCE_SCHEMES,
    PriceHistory,
    WeightingRules,
    reweight,
)

SWEEP_FIELDS = ("name", "description", "strategy", "grid", "heatmap", "walk_forward")
GROUP_WEIGHTS = "scoring.group_weights"
WINDOWS = ("expanding", "sliding")


class SweepConfigError(ValueError):
    """A sweep file breaks its schema; the message names the file and the field."""


@dataclass(frozen=True)
class WalkForwardRules:
    """Pick the best variant on a training window by ``objective``, hold it for the test window."""

    objective: str = "sharpe_ratio"
    train_years: int = 5
    test_years: int = 1
    window: str = "expanding"


@dataclass(frozen=True)
class Variant:
    """One point of the grid: its name, the parameter values (short names) and its spec."""

    name: str
    params: dict[str, Any]
    spec: StrategySpec


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep file."""

    name: str
    description: str
    strategy: str
    variants: tuple[Variant, ...]
    heatmap: tuple[str, str, str]
    walk_forward: WalkForwardRules

    @property
    def parameters(self) -> list[str]:
        return list(self.variants[0].params) if self.variants else []


def _short(path: str) -> str:
    return path.rsplit(".", 1)[-1]


def _set(doc: dict, path: str, value: Any, file: str) -> None:
    """Set a dotted path in a strategy document (group weights: every group's weight)."""
    if path == GROUP_WEIGHTS:
        groups = doc.get("scoring", {}).get("groups")
        if not isinstance(groups, dict) or not isinstance(value, Mapping):
            raise SweepConfigError(f"{file}: grid.{path}: needs scoring.groups and a mapping")
        if set(value) != set(groups):
            raise SweepConfigError(
                f"{file}: grid.{path}: {sorted(value)} must name every group {sorted(groups)}"
            )
        for g, w in value.items():
            groups[g]["weight"] = w
        return
    *parents, leaf = path.split(".")
    node = doc
    for key in parents:
        if not isinstance(node.get(key), dict):
            raise SweepConfigError(f"{file}: grid.{path}: {key!r} is not a section of the strategy")
        node = node[key]
    node[leaf] = value


def _label(value: Any) -> Any:
    """A parameter value as a table cell: group weights as 'quality=0.35/growth=0.35/...'."""
    if isinstance(value, Mapping):
        return "/".join(f"{k}={v:g}" for k, v in value.items())
    return value


def _walk_forward(raw: Any, file: str) -> WalkForwardRules:
    if raw is None:
        return WalkForwardRules()
    if not isinstance(raw, Mapping) or set(raw) - {
        "objective",
        "train_years",
        "test_years",
        "window",
    }:
        raise SweepConfigError(
            f"{file}: walk_forward: a mapping of objective, train_years, test_years, window"
        )
    rules = WalkForwardRules(**raw)
    for key in ("train_years", "test_years"):
        value = getattr(rules, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SweepConfigError(
                f"{file}: walk_forward.{key}: a whole number >= 1, got {value!r}"
            )
    if rules.objective not in OBJECTIVES:
        raise SweepConfigError(
            f"{file}: walk_forward.objective: {rules.objective!r}; allowed {OBJECTIVES}"
        )
    if rules.window not in WINDOWS:
        raise SweepConfigError(f"{file}: walk_forward.window: {rules.window!r}; allowed {WINDOWS}")
    return rules


def parse_sweep(raw: Any, base_doc: Mapping[str, Any], file: str = "<sweep>") -> SweepSpec:
    """Validate a sweep document against its base strategy document; build every variant.

    ``raw``: the parsed sweep YAML; ``base_doc``: the parsed YAML of ``raw['strategy']``.
    Variants are numbered in grid order (the last grid key varies fastest): ``<name>__v000``.
    """
    if not isinstance(raw, Mapping):
        raise SweepConfigError(f"{file}: a sweep file is a mapping with fields {SWEEP_FIELDS}")
    unknown = sorted(set(raw) - set(SWEEP_FIELDS))
    if unknown:
        raise SweepConfigError(f"{file}: unknown field(s) {unknown}; allowed {list(SWEEP_FIELDS)}")
    grid = raw.get("grid")
    if not isinstance(grid, Mapping) or not grid:
        raise SweepConfigError(f"{file}: grid: a mapping of dotted paths to lists of values")
    for path, values in grid.items():
        if not isinstance(values, list) or not values:
            raise SweepConfigError(f"{file}: grid.{path}: a non-empty list of values")
    shorts = [_short(p) for p in grid]
    if len(set(shorts)) != len(shorts):
        raise SweepConfigError(f"{file}: grid: parameter names {shorts} must be unique")
    name = raw.get("name") or f"{raw.get('strategy')}_sweep"
    variants = []
    for i, combo in enumerate(itertools.product(*grid.values())):
        doc = copy.deepcopy(dict(base_doc))
        for path, value in zip(grid, combo, strict=True):
            _set(doc, path, copy.deepcopy(value), file)
        doc["name"] = f"{name}__v{i:03d}"
        try:
            spec = parse_strategy(doc, f"{file} variant {i}")
        except StrategyConfigError as exc:
            raise SweepConfigError(str(exc)) from exc
        params = {s: _label(v) for s, v in zip(shorts, combo, strict=True)}
        variants.append(Variant(doc["name"], params, spec))
    heat = raw.get("heatmap") or {}
    heatmap = (
        heat.get("x", shorts[0]),
        heat.get("y", shorts[-1]),
        heat.get("metric", "sharpe_ratio"),
    )
    for axis in heatmap[:2]:
        if axis not in shorts:
            raise SweepConfigError(f"{file}: heatmap: {axis!r} is not a grid parameter {shorts}")
    return SweepSpec(
        name=name,
        description=str(raw.get("description", "")).strip(),
        strategy=str(raw.get("strategy")),
        variants=tuple(variants),
        heatmap=heatmap,
        walk_forward=_walk_forward(raw.get("walk_forward"), file),
    )


def score_key(spec: StrategySpec) -> str:
    """What a variant's scores on a date depend on: universe and scoring (not the schedule:
    scores are cross-sectional per date, so a quarterly date scores as the same monthly date)."""
    d = spec.to_dict()
    return json.dumps([d["universe"], d["scoring"]], sort_keys=True)


HEADLINE = (
    "total_return",
    "cagr",
    "annual_volatility",
    "sharpe_ratio",
    "sortino_ratio",
    "max_drawdown",
    "annual_turnover",
    "total_costs",
    "probabilistic_sharpe_ratio",
)
DAILY_COLUMNS = ["date", "portfolio_return", "benchmark_return"]


@dataclass(frozen=True)
class SweepResult:
    """``table``: one row per variant (parameters, headline metrics, DSR, sweep-wide PBO);
    ``daily``: variant, date, portfolio_return, benchmark_return; ``summary``: the sweep-wide
    numbers; ``pbo``: the CSCV detail (None when there were too few dates or variants)."""

    table: pl.DataFrame
    daily: pl.DataFrame
    summary: dict[str, Any]
    pbo: OverfittingResult | None


# ``map_runs(fn, shared, jobs)`` -> ``[fn(shared, job) for job in jobs]``, in order: how the
# variants are spread (serially by default; the outer layers pass a process pool that ships
# ``shared`` - a :class:`SweepContext` - to each worker once).
RunMapper = Callable[[Callable[[Any, Any], Any], Any, Sequence[Any]], Iterable[Any]]


def serial_map(fn: Callable[[Any, Any], Any], shared: Any, jobs: Sequence[Any]) -> list[Any]:
    """The default :data:`RunMapper`: every job in this process, in order."""
    return [fn(shared, job) for job in jobs]


@dataclass(frozen=True)
class RankedScores:
    """One scoring on one set of dates: its eligible, ranked names in selection order
    (``ranked_names``: score, rank, sector bucket) and their factors.values columns the
    weighting schemes read. A selected name is always a ranked one, so these rows are all a
    variant's weights can read."""

    ranked: pl.DataFrame
    values: pl.DataFrame


WEIGHTING_COLUMNS = ("rebalance_date", "ticker", "volatility", "market_cap")
RANKED_COLUMNS = ("rebalance_date", "ticker", "sector", "eligible", "score", "rank", "_in_sector")


def variant_weights(
    variant: Variant,
    values: pl.DataFrame | None,
    dates: list,
    cache: dict[Any, Any],
    history: PriceHistory | None = None,
) -> pl.DataFrame:
    """The variant's target weights on ``dates``; scores shared through ``cache``.

    The cache holds, per :func:`score_key`, the scores of every date in ``values`` (score once
    per universe and scoring), and per score key and dates a :class:`RankedScores`, so each
    variant only selects its top_n under its sector cap and weights them (``values`` may be
    None once the cache holds the variant's entry).
    """
    spec = variant.spec
    own = (score_key(spec), tuple(dates))
    if own not in cache:
        if values is None:
            raise SweepConfigError(f"{variant.name}: no scores prepared for its dates")
        _prepare_scores(spec, values, dates, cache)
    prepared: RankedScores = cache[own]
    weights = selected_weights(prepared.ranked, spec)
    rules = WeightingRules.from_spec(spec)
    if not rules.is_equal:
        weights, _ = reweight(
            weights, rules, scores=prepared.ranked, values=prepared.values, history=history
        )
    return weights


def _prepare_scores(spec: StrategySpec, values: pl.DataFrame, dates: list, cache: dict) -> None:
    key = score_key(spec)
    if key not in cache:
        zscored = None
        if spec.scoring.method == "weighted_zscore":  # group weights reuse the z-scores
            zkey = ("zscores", zscore_key(spec))
            if zkey not in cache:
                cache[zkey] = factor_zscores(values, spec)
            zscored = cache[zkey]
        cache[key] = score(values, spec, components=False, zscored=zscored)[0]
    scores = cache[key].filter(pl.col("rebalance_date").is_in(pl.Series(dates).implode()))
    # what selection and weighting read (a worker process gets a copy: no more than that)
    ranked = ranked_names(scores).select(RANKED_COLUMNS)
    keys = ranked.select("rebalance_date", "ticker")
    read = [c for c in WEIGHTING_COLUMNS if c in values.columns]  # a scheme's column may be absent
    own = values.select(read).join(keys, on=["rebalance_date", "ticker"], how="semi")
    cache[(key, tuple(dates))] = RankedScores(ranked, own)


def _headline(daily: pl.DataFrame) -> dict[str, float | None]:
    m = performance_metrics(daily)
    found = dict(m.select("metric", "value").iter_rows())
    return {k: found.get(k) for k in HEADLINE}


@dataclass(frozen=True)
class SweepContext:
    """What every variant's run reads, prepared once: the price matrix (the names some ranked
    list holds), the prepared scores (:class:`RankedScores` per scoring and dates) and the
    price history of the covariance schemes (None when no variant uses one)."""

    matrix: PriceMatrix
    scores: dict[Any, RankedScores]
    history: PriceHistory | None


@dataclass(frozen=True)
class VariantJob:
    """One variant to run: the variant, its rebalance dates, trading model, delisting return."""

    variant: Variant
    dates: tuple
    model: TradingModel
    delisting_return: float | None = None


def run_variant(ctx: SweepContext, job: VariantJob) -> tuple[dict, pl.DataFrame]:
    """One variant: its weights from the shared scores, then the share simulation's fast path
    (``simulate_daily``: the same account as ``simulate``, daily rows only). Returns its table
    row (parameters and headline metrics) and its daily returns."""
    variant = job.variant
    weights = variant_weights(variant, None, list(job.dates), ctx.scores, ctx.history)
    if weights.is_empty():
        raise SweepConfigError(f"variant {variant.name} selects no names")
    daily = simulate_daily(
        weights, ctx.matrix, job.model, delisting_return=job.delisting_return
    ).sort("date")
    row = {"variant": variant.name, **variant.params, **_headline(daily)}
    return row, daily.select(pl.lit(variant.name).alias("variant"), *DAILY_COLUMNS)


def run_sweep(
    sweep: SweepSpec,
    values: pl.DataFrame,
    schedules: Mapping[str, list],
    prices: pl.DataFrame,
    benchmark: pl.DataFrame | None,
    model_for: Callable[[StrategySpec], TradingModel],
    delisting_return: float | None = None,
    n_splits: int = DEFAULT_SPLITS,
    map_runs: RunMapper = serial_map,
) -> SweepResult:
    """Run every variant: shared scores, its weights, the share simulation, headline metrics.

    ``values``: factors.values (computed once, every rebalance date any variant needs);
    ``schedules``: frequency -> rebalance dates; ``prices``: curated.prices (ticker, date,
    close, adj_close; and daily_return when ``benchmark`` is None); ``benchmark``: date,
    benchmark_return (as ``simulate``); ``model_for``: the trading model of a variant;
    ``map_runs``: how the variants are spread (:data:`RunMapper`). Scores are computed here
    (once per scoring) and the prices laid out once (``PriceMatrix``); each variant then selects,
    weights and trades (:func:`run_variant`). DSR and PBO are computed over the dates all
    variants share (a monthly variant starts before a quarterly one).
    """
    ctx = prepare_sweep(sweep, values, schedules, prices, benchmark)
    jobs = [
        VariantJob(v, tuple(schedules[v.spec.rebalance]), model_for(v.spec), delisting_return)
        for v in sweep.variants
    ]
    try:
        runs = list(map_runs(run_variant, ctx, jobs))
    except SweepConfigError as exc:
        raise SweepConfigError(f"{sweep.name}: {exc}") from exc
    table = pl.DataFrame([row for row, _ in runs], infer_schema_length=None)
    daily = pl.concat([d for _, d in runs])
    return sweep_result(sweep, table, daily, n_splits)


def prepare_sweep(
    sweep: SweepSpec,
    values: pl.DataFrame,
    schedules: Mapping[str, list],
    prices: pl.DataFrame,
    benchmark: pl.DataFrame | None,
) -> SweepContext:
    """The :class:`SweepContext` of :func:`run_sweep` (arguments as there)."""
    missing = sorted({v.spec.rebalance for v in sweep.variants} - set(schedules))
    if missing:
        raise SweepConfigError(f"{sweep.name}: no rebalance dates for frequency {missing}")
    history = None
    if any(v.spec.portfolio.weighting in COVARIANCE_SCHEMES for v in sweep.variants):
        history = PriceHistory(prices)
    needed = sorted({d for v in sweep.variants for d in schedules[v.spec.rebalance]})
    values = values.filter(pl.col("rebalance_date").is_in(pl.Series(needed).implode()))
    cache: dict[Any, Any] = {}
    for variant in sweep.variants:
        dates = schedules[variant.spec.rebalance]
        if (score_key(variant.spec), tuple(dates)) not in cache:
            _prepare_scores(variant.spec, values, dates, cache)
    prepared = {k: v for k, v in cache.items() if isinstance(v, RankedScores)}
    cache.clear()  # the scores of every date and the z-scores: not needed past this point
    names = pl.concat([p.ranked.select("ticker") for p in prepared.values()])["ticker"].unique()
    matrix = PriceMatrix.from_prices(prices, benchmark, tickers=names.to_list())
    return SweepContext(matrix, prepared, history)


def sweep_result(
    sweep: SweepSpec, table: pl.DataFrame, daily: pl.DataFrame, n_splits: int = DEFAULT_SPLITS
) -> SweepResult:
    """The variants' rows and daily returns with each one's DSR against all of them (on the
    dates every variant has) and the sweep's PBO (CSCV, ``n_splits`` blocks)."""
    shared = common_dates(daily, "variant")
    trials, summary = deflate_trials(shared, "variant")
    try:
        pbo = probability_of_backtest_overfitting(shared, "variant", n_splits=n_splits)
    except OverfittingInputError:
        pbo = None
    summary.update(
        sweep=sweep.name,
        pbo=None if pbo is None else pbo.pbo,
        first_date=shared["date"].min(),
        last_date=shared["date"].max(),
    )
    table = table.join(
        trials.select(
            "variant",
            pl.col("sharpe_ratio").alias("sharpe_ratio_shared_dates"),
            "deflated_sharpe_ratio",
        ),
        on="variant",
        how="left",
    ).with_columns(
        sweep=pl.lit(sweep.name),
        n_variants=pl.lit(len(sweep.variants)),
        expected_maximum_sharpe=pl.lit(summary["expected_maximum_sharpe"], pl.Float64),
        pbo=pl.lit(summary["pbo"], pl.Float64),
    )
    return SweepResult(table=table, daily=daily, summary=summary, pbo=pbo)

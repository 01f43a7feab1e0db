"""Which inputs a strategy needs, and which strategies a warehouse with fewer inputs can run.

Users often have prices only (a folder of daily price files), or prices and fundamentals without
company profiles. Each missing input removes only the strategies that depend on it:

- ``fundamentals`` (curated.fundamentals): every statement factor (roe, pe, earnings_yield, ...);
- ``securities`` (curated.securities): sector and country rules (``include_sectors``,
  ``exclude_sectors``, ``countries``). A sector *cap* without sectors cannot bind (every name is
  "Unknown"): it is dropped with a note instead of squeezing the portfolio into one bucket;
- ``shares`` (shares outstanding from fundamentals or from profiles): ``market_cap``.

A blend is skipped when one of its sleeves is. Pure: specs and a set of input names in, specs and
reasons out.

Profile fields (:class:`ProfileCoverage`): an exchange or country rule that fails a name whose
field is unknown (``universe.exchanges``; a named screen's ``exchanges``/``countries`` without
``allow_unknown``) keeps nothing when the field is unknown for every priced ticker, as with the
S&P folder's securities.csv (no exchange column): such a strategy is skipped with a reason that
says so, instead of running empty. A rule that lets unknown names through (``universe.countries``)
or a field unknown for only some tickers gets a note.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import polars as pl

from quant_pipeline.core.factors.values import FACTOR_NAMES
from quant_pipeline.core.strategies.spec import StrategySpec

INPUTS = ("prices", "fundamentals", "securities", "shares")
# factors.values columns computed from prices alone (core/factors/values.py); every other factor
# column is computed from statements (market cap also needs a share count: SHARES_FACTORS).
PRICE_FACTORS = frozenset(
    {"price", "avg_volume", "avg_dollar_volume", "momentum_12_1", "volatility"}
)
FUNDAMENTAL_FACTORS = frozenset(FACTOR_NAMES) - PRICE_FACTORS - {"market_cap"}
SHARES_FACTORS = frozenset({"market_cap"})


@dataclass(frozen=True)
class StrategyPlan:
    """The strategies to run (possibly adapted), those skipped with the reason, notes on dropped
    sector caps, and notes on profile fields their rules read (:class:`ProfileCoverage`)."""

    runnable: dict[str, StrategySpec]
    skipped: dict[str, str]
    notes: dict[str, str]
    profile_notes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProfileCoverage:
    """Of the ``tickers`` with prices, how many have a known exchange / country in
    curated.securities."""

    tickers: int
    with_exchange: int
    with_country: int


PROFILE_HELP = "add {article} {field} column to securities.csv, see docs/data_sources.md"


def available_inputs(
    fundamentals_rows: int, securities_with_sector: int, rows_with_shares: int
) -> frozenset[str]:
    """The input names present, from counts in the curated tables (prices are always there)."""
    present = {"prices"}
    if fundamentals_rows:
        present.add("fundamentals")
    if securities_with_sector:
        present.add("securities")
    if rows_with_shares:
        present.add("shares")
    return frozenset(present)


def _factor_columns(spec: StrategySpec) -> set[str]:
    used = set(spec.scoring.factors) if spec.scoring is not None else set()
    used |= {factor for factor, _, _ in spec.universe.screens}
    if spec.universe.min_market_cap is not None or spec.universe.max_market_cap is not None:
        used.add("market_cap")
    return used


def required_inputs(spec: StrategySpec) -> dict[str, list[str]]:
    """Input name -> what in the strategy needs it (factor or rule names), for kinds with rules.

    Signal strategies read prices (CAN SLIM's earnings criterion is optional); blends need what
    their sleeves need (see :func:`plan_strategies`).
    """
    needs: dict[str, list[str]] = {}
    factors = _factor_columns(spec)
    if factors & FUNDAMENTAL_FACTORS:
        needs["fundamentals"] = sorted(factors & FUNDAMENTAL_FACTORS)
    if factors & SHARES_FACTORS:
        needs["shares"] = sorted(factors & SHARES_FACTORS)
    rules = []
    if spec.universe.include_sectors is not None:
        rules.append("include_sectors")
    if spec.universe.exclude_sectors:
        rules.append("exclude_sectors")
    if spec.universe.countries is not None:
        rules.append("countries")
    if rules:
        needs["securities"] = rules
    return needs


_WHAT = {
    "fundamentals": "fundamentals (curated.fundamentals is empty)",
    "securities": "sectors/countries (curated.securities has no sectors)",
    "shares": "shares outstanding (neither fundamentals nor securities give shares)",
}


def _reason(needs: Mapping[str, list[str]], present: frozenset[str]) -> str | None:
    missing = [name for name in needs if name not in present]
    if not missing:
        return None
    return "; ".join(f"needs {_WHAT[name]} for {', '.join(needs[name])}" for name in missing)


def _profile_rules(spec: StrategySpec) -> dict[str, tuple[str, bool]]:
    """Profile field -> (the rule reading it, whether a name whose field is unknown passes)."""
    u = spec.universe
    rules: dict[str, tuple[str, bool]] = {}
    if u.exchanges is not None:
        rules["exchange"] = ("universe.exchanges", False)
    if u.countries is not None:
        rules["country"] = ("universe.countries", True)
    screen = u.screen_rules
    for name, column in (("exchanges", "exchange"), ("countries", "country")):
        rule = getattr(screen, name) if screen is not None else None
        # a rule failing unknown names decides: it empties the universe on its own
        if rule is not None and (column not in rules or not rule.allow_unknown):
            rules[column] = (f"screen {u.screen}: {name}", rule.allow_unknown)
    return rules


def profile_findings(
    spec: StrategySpec, coverage: ProfileCoverage
) -> tuple[str | None, str | None]:
    """(skip reason, note) for the profile fields ``spec``'s rules read, given ``coverage``."""
    reasons, notes = [], []
    n = coverage.tickers
    for column, (rule, unknown_passes) in sorted(_profile_rules(spec).items()):
        known = coverage.with_exchange if column == "exchange" else coverage.with_country
        unknown = n - known
        if n == 0 or unknown <= 0:
            continue
        help_ = PROFILE_HELP.format(article="an" if column == "exchange" else "a", field=column)
        if known == 0 and not unknown_passes:
            reasons.append(f"{column} unknown for all {n} tickers; {help_}")
        elif known == 0:
            notes.append(
                f"{column} unknown for all {n} tickers: {rule} lets them all through "
                f"(an unknown {column} passes); {help_}"
            )
        else:
            verb = "pass" if unknown_passes else "fail"
            notes.append(f"{column} unknown for {unknown} of {n} tickers: they {verb} {rule}")
    return ("; ".join(reasons) or None), ("; ".join(notes) or None)


def _without_sector_cap(spec: StrategySpec) -> tuple[StrategySpec, str | None]:
    if spec.portfolio is None or spec.portfolio.max_sector_weight is None:
        return spec, None
    cap = spec.portfolio.max_sector_weight
    note = f"sector cap {cap:.0%} not applied: no sectors known (every sector is Unknown)"
    portfolio = spec.portfolio.model_copy(update={"max_sector_weight": None})
    return replace(spec, portfolio=portfolio), note


def plan_strategies(
    specs: Mapping[str, StrategySpec],
    present: Iterable[str],
    coverage: ProfileCoverage | None = None,
) -> StrategyPlan:
    """Split ``specs`` into runnable and skipped given the ``present`` input names.

    Without ``securities`` a runnable strategy's sector cap is removed (noted). With
    ``coverage``, a strategy whose exchange or country rule fails every ticker because that field
    is unknown for all of them is skipped, and other gaps are noted (:func:`profile_findings`).
    A blend is skipped when any sleeve is skipped or absent.
    """
    have = frozenset(present)
    runnable: dict[str, StrategySpec] = {}
    skipped: dict[str, str] = {}
    notes: dict[str, str] = {}
    profile_notes: dict[str, str] = {}
    for name, spec in specs.items():
        if spec.kind == "blend":
            continue
        reason = _reason(required_inputs(spec), have)
        if reason is None and coverage is not None:
            reason, note = profile_findings(spec, coverage)
            if note is not None:
                profile_notes[name] = note
        if reason is not None:
            skipped[name] = reason
            continue
        if "securities" not in have:
            spec, note = _without_sector_cap(spec)
            if note:
                notes[name] = note
        runnable[name] = spec
    for name, spec in specs.items():
        if spec.kind != "blend":
            continue
        sleeves = [s for s, _ in spec.blend.sleeves] if spec.blend else []
        out = [s for s in sleeves if s not in runnable]
        if out:
            skipped[name] = f"sleeve(s) {', '.join(out)} skipped"
        else:
            runnable[name] = spec
    return StrategyPlan(
        runnable=runnable, skipped=skipped, notes=notes, profile_notes=profile_notes
    )


def plan_labels(plan: StrategyPlan) -> pl.DataFrame:
    """``backtest.labels`` rows (strategy, label, value) for a plan: ``skipped`` with the reason
    for each skipped strategy, ``sector_cap`` with the note for each cap dropped,
    ``profile_fields`` with the note on the exchange / country its rules read."""
    rows = [(name, "skipped", reason) for name, reason in sorted(plan.skipped.items())]
    rows += [(name, "sector_cap", note) for name, note in sorted(plan.notes.items())]
    rows += [(name, "profile_fields", note) for name, note in sorted(plan.profile_notes.items())]
    return pl.DataFrame(
        rows, schema={"strategy": pl.String, "label": pl.String, "value": pl.String}, orient="row"
    )

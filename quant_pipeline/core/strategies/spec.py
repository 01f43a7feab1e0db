"""Strategies are data: the typed model of a strategy YAML document and the frozen spec it gives.

Pure (pydantic; no file access: ``quant_pipeline.config.strategies`` reads the shipped and user
files). The document models (:class:`FactorDocument`, :class:`StaggeredDocument`,
:class:`SignalDocument`, :class:`BlendDocument`, one per ``kind``) are the schema documented in
``docs/strategies.md`` (its field tables are generated from them). Everything is validated when
a document is parsed (unknown fields, unknown factor names, non-positive weights, group weights
not summing to 1, unknown enum values), and every error names the file, the key path and the
allowed values, so a typo fails at load time instead of silently scoring on nothing.
:func:`parse_strategy` turns a valid document into the :class:`StrategySpec` the pipeline uses.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from quant_pipeline.core.config_errors import StrictSection, first_problem, one_of, problem
from quant_pipeline.core.data.calendar import FREQUENCIES, TRADING_DAYS_PER_YEAR
from quant_pipeline.core.data.schema import SECTORS
from quant_pipeline.core.factors.values import FACTOR_NAMES
from quant_pipeline.core.strategies.screen import ScreenRules
from quant_pipeline.core.strategies.technical_signals import SIGNALS, build_signal
from quant_pipeline.core.strategies.weighting import SCHEMES as WEIGHTING_SCHEMES

SCORING_METHODS: tuple[str, ...] = ("weighted_zscore", "rank_sum")
WEIGHTINGS: tuple[str, ...] = WEIGHTING_SCHEMES  # core/strategies/weighting.py
KINDS: tuple[str, ...] = ("factor", "staggered", "signal", "blend")
SIZINGS: tuple[str, ...] = ("slot", "equal")
BLEND_FREQUENCIES: tuple[str, ...] = ("daily", *FREQUENCIES)
WEIGHT_TOLERANCE = 1e-6
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


class StrategyConfigError(ValueError):
    """A strategy file breaks the schema. ``file``, ``field`` and ``allowed`` say where and how."""

    def __init__(self, file: str, field: str, problem: str, allowed: Iterable[Any] | None = None):
        self.file = file
        self.field = field
        self.allowed = tuple(allowed) if allowed is not None else None
        message = f"{file}: {field}: {problem}"
        if self.allowed is not None:
            message += f"; allowed: {list(self.allowed)}"
        super().__init__(message)


# --------------------------------------------------------------------------------------------
# The document: what a strategy YAML file may contain (one model per section).

Amount = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Number = Annotated[float, Field(allow_inf_nan=False)]
Whole = Annotated[int, Field(ge=1)]
Sector = one_of(SECTORS)
FactorName = one_of(FACTOR_NAMES)


def _described(description: str, default: Any = ..., **rules: Any) -> Any:
    return Field(default=default, description=description, **rules)


class ScreenBounds(StrictSection):
    """Inclusive bounds on one factors.values column; a missing value fails the screen."""

    min: Number | None = _described("Lowest allowed value.", None)
    max: Number | None = _described("Highest allowed value.", None)

    @model_validator(mode="after")
    def _ordered(self) -> ScreenBounds:
        if self.min is None and self.max is None:
            raise problem("", "needs min or max", ("min", "max"))
        if self.min is not None and self.max is not None and self.min > self.max:
            raise problem("max", f"must be >= min ({self.min!r}), got {self.max!r}")
        return self


class UniverseSection(StrictSection):
    """``universe``: eligibility filters on top of ``in_universe`` (unset = no bound)."""

    min_market_cap: Amount | None = _described("Smallest market cap ($).", None)
    max_market_cap: Amount | None = _described("Largest market cap ($).", None)
    min_avg_volume: Amount | None = _described("Smallest 63-day average volume (shares).", None)
    min_avg_dollar_volume: Amount | None = _described("Smallest 63-day average $ volume.", None)
    min_price: Amount | None = _described("Smallest price (previous close).", None)
    exclude_sectors: list[Sector] | None = _described("Sectors left out.", None)
    include_sectors: list[Sector] | None = _described("Only these sectors (unset: all).", None)
    countries: list[str] | None = _described(
        "Only these curated.securities countries (unknown country passes).", None, min_length=1
    )
    exchanges: list[str] | None = _described(
        "Only these curated.securities exchanges, e.g. [NYSE, NASDAQ] (unknown exchange fails).",
        None,
        min_length=1,
    )
    screen: str | None = _described(
        "A screen file of quant_pipeline/screens/ by name (its rules are added).",
        None,
        pattern=r"^[a-z][a-z0-9_]*$",
    )
    screens: dict[FactorName, ScreenBounds] | None = _described(
        "{factor: {min, max}} bounds on factors.values columns.", None
    )

    @model_validator(mode="after")
    def _caps_ordered(self) -> UniverseSection:
        low, high = self.min_market_cap, self.max_market_cap
        if low is not None and high is not None and low > high:
            raise problem("max_market_cap", "must be >= universe.min_market_cap")
        return self


class FactorEntry(StrictSection):
    """One factor of a group: ``roe: 0.25``, ``roe:`` (equal share) or a mapping."""

    weight: Positive | None = _described("Weight inside the group (unset: equal).", None)
    higher_is_better: bool = _described("Direction (false: low values score high).", True)


def _factor_entry(value: Any) -> Any:
    """The short spellings of a factor entry: null = equal share, a number = its weight."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise problem("", f"must be a number, got {value!r}")
    if value <= 0:
        raise problem("", f"must be positive, got {value!r}")
    return {"weight": value}


Factors = dict[FactorName, Annotated[FactorEntry, BeforeValidator(_factor_entry)]]


def _factor_weights(factors: Mapping[str, FactorEntry], at: str) -> list[float]:
    """The factors' weights (equal shares when none is given); they must sum to 1."""
    if not factors:
        raise problem(at, "needs at least one factor", FACTOR_NAMES)
    given = [f.weight for f in factors.values()]
    if any(w is None for w in given) and any(w is not None for w in given):
        missing = next(n for n, f in factors.items() if f.weight is None)
        raise problem(f"{at}.{missing}", "has no weight while other factors of the group do")
    weights = [1.0 / len(given)] * len(given) if given[0] is None else [float(w) for w in given]
    if abs(sum(weights) - 1.0) > WEIGHT_TOLERANCE:
        raise problem(at, f"factor weights must sum to 1, got {sum(weights):.6g}")
    return weights


class FactorGroupSection(StrictSection):
    """``scoring.groups.<name>``: a group's weight in the composite and its factors."""

    weight: Positive = _described("Weight of the group in the composite score.")
    factors: Factors | None = _described("{factor: weight | null | {weight, higher_is_better}}.")

    @model_validator(mode="after")
    def _weights(self) -> FactorGroupSection:
        _factor_weights(self.factors or {}, "factors")
        return self


class ScoringSection(StrictSection):
    """``scoring``: how factor values become one score per ticker and date."""

    method: one_of(SCORING_METHODS) = _described("How factors combine.")  # type: ignore[valid-type]
    winsorize: tuple[float, float] | None = _described(
        "[lower, upper] quantiles clipped first (weighted_zscore only).", None
    )
    min_weight_available: Number = _described(
        "Share of factor weight a name needs values for.", 0.5, gt=0, le=1
    )
    groups: dict[str, FactorGroupSection] | None = _described("Named factor groups.", None)
    factors: Factors | None = _described("One implicit group (instead of groups).", None)

    @field_validator("winsorize", mode="before")
    @classmethod
    def _bounds(cls, wins: Any) -> Any:
        if wins is None:
            return None
        if (
            not isinstance(wins, list)
            or len(wins) != 2
            or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in wins)
            or not 0 <= wins[0] < wins[1] <= 1
        ):
            raise ValueError(f"must be [lower, upper] with 0 <= lower < upper <= 1, got {wins!r}")
        return (float(wins[0]), float(wins[1]))

    @model_validator(mode="after")
    def _consistent(self) -> ScoringSection:
        if (self.groups is None) == (self.factors is None):
            raise problem("", "give exactly one of 'groups' or 'factors'", ("groups", "factors"))
        if self.factors is not None:
            _factor_weights(self.factors, "factors")
        else:
            self._check_groups(self.groups or {})
        if self.winsorize is not None and self.method != "weighted_zscore":
            raise problem(
                "winsorize", f"only applies to method weighted_zscore, not {self.method!r}"
            )
        return self

    @staticmethod
    def _check_groups(groups: Mapping[str, FactorGroupSection]) -> None:
        if not groups:
            raise problem("groups", "needs at least one group")
        seen: dict[str, str] = {}
        for gname, group in groups.items():
            for fname in group.factors or {}:
                path = f"groups.{gname}.factors.{fname}"
                if fname in seen:
                    raise problem(path, f"factor already used in scoring.{seen[fname]}")
                seen[fname] = path
        total = sum(g.weight for g in groups.values())
        if abs(total - 1.0) > WEIGHT_TOLERANCE:
            raise problem("groups", f"group weights must sum to 1, got {total:.6g}")


class PortfolioRules(StrictSection):
    """``portfolio``: how the ranked names become target weights."""

    top_n: Whole = _described("Names held.")
    weighting: one_of(WEIGHTINGS) = _described("Weighting.", "equal")  # type: ignore[valid-type]
    max_sector_weight: Positive | None = _described("Cap on one sector's weight.", None, le=1)
    max_weight: Positive | None = _described("Cap on one name's weight.", None, le=1)
    turnover_limit: Positive | None = _described(
        "Most one-way turnover per rebalance (unset: no limit).", None, le=1
    )
    lookback_days: int = _described(
        "Trading days of returns before D for the covariance.", TRADING_DAYS_PER_YEAR, ge=60
    )


class CostRules(StrictSection):
    """``costs``: transaction costs in basis points of traded value."""

    bps: Amount = _described("Basis points of traded value.", 0.0)


class TradingRules(StrictSection):
    """``trading``: per-strategy overrides of the run's trading model (unset = the run's)."""

    capital: Positive | None = _described("Starting capital ($).", None)
    fractional: bool | None = _described("Fractional shares.", None)
    commission_per_share: Amount | None = _described("Commission per share ($).", None)
    commission_minimum: Amount | None = _described("Minimum commission per order ($).", None)
    commission_maximum_pct: Amount | None = _described("Commission cap (share of value).", None)
    commission_bps: Amount | None = _described("Commission in basis points of value.", None)
    slippage_bps: Amount | None = _described("Slippage in basis points.", None, lt=10_000)
    cash_rate: Number | None = _described("Annual rate earned on cash.", None, gt=-1)
    tolerance_band: Amount | None = _described(
        "No order for a held name within this share of its target (0.2 = 20%).", None
    )
    min_trade_value: Amount | None = _described(
        "Smallest order placed ($; unset = commission-aware: minimum commission / 0.005).", None
    )
    resize_held: bool | None = _described(
        "Resize names held (unset: false for kinds signal and staggered).", None
    )

    def overrides(self) -> dict[str, Any]:
        """The fields set in the file, by name."""
        return self.model_dump(exclude_none=True)


class StaggeredRules(StrictSection):
    """``staggered`` (kind staggered): each rebalance buy the next best names, hold them."""

    buy_per_rebalance: Whole = _described("Names bought at each rebalance.")
    hold_periods: Whole = _described("Rebalances each name is held.")
    sizing: one_of(SIZINGS) = _described("Slot or equal sizing.", "slot")  # type: ignore[valid-type]


class SignalSection(StrictSection):
    """``signal`` (kind signal): a technical signal turned into daily target weights."""

    name: one_of(sorted(SIGNALS)) = _described("Signal (core/strategies/technical_signals.py).")  # type: ignore[valid-type]
    params: dict[str, Any] | None = _described("Parameters of the signal.", None)
    max_positions: Whole = _described("Most names held at once.")
    sizing: one_of(SIZINGS) = _described("Slot or equal sizing.", "slot")  # type: ignore[valid-type]
    stop_loss: Positive | None = _described("Exit below entry by this fraction.", None, lt=1)
    use_earnings: bool = _described("Let the signal read earnings growth.", True)
    max_sector_weight: Positive | None = _described(
        "Cap on one sector's share of max_positions (unset: no cap).", None, le=1
    )

    @model_validator(mode="after")
    def _known_params(self) -> SignalSection:
        params = self.params or {}
        allowed = tuple(SIGNALS[self.name].__dataclass_fields__)
        for key in params:
            if key not in allowed:
                raise problem(
                    f"params.{key}", f"unknown parameter of signal {self.name!r}", allowed
                )
        try:
            build_signal(self.name, params)
        except ValueError as exc:
            bad = re.search(r"parameter '(\w+)'", str(exc))
            raise problem(f"params.{bad.group(1)}" if bad else "params", str(exc)) from None
        return self


class BlendSection(StrictSection):
    """``blend`` (kind blend): fixed weights on other strategies' daily returns."""

    sleeves: dict[str, Positive] = _described("{strategy: weight}, at least two, summing to 1.")
    rebalance: one_of(BLEND_FREQUENCIES) = _described("Re-weighting frequency.", "monthly")  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _weights(self) -> BlendSection:
        if len(self.sleeves) < 2:
            raise problem("sleeves", f"needs at least two strategies, got {len(self.sleeves)}")
        total = sum(self.sleeves.values())
        if abs(total - 1.0) > WEIGHT_TOLERANCE:
            raise problem("sleeves", f"sleeve weights must sum to 1, got {total:.6g}")
        return self


class _Document(StrictSection):
    name: str = _described("lower_snake_case name, unique among the strategy files.")
    description: str | None = _described("What the strategy does (shown in reports).", None)
    kind: str = _described(f"One of {list(KINDS)}.", "factor")

    @field_validator("name")
    @classmethod
    def _snake_case(cls, name: str) -> str:
        if not NAME_PATTERN.match(name):
            raise ValueError(f"must be lower_snake_case ({NAME_PATTERN.pattern}), got {name!r}")
        return name


class FactorDocument(_Document):
    """A strategy file of kind ``factor`` (the default)."""

    rebalance: one_of(FREQUENCIES) = _described("Rebalance frequency.")  # type: ignore[valid-type]
    benchmark: str | None = _described(
        "Ticker compared with when the data has its prices (else the run's primary).", None
    )
    universe: UniverseSection = _described("Eligibility filters.", UniverseSection())
    scoring: ScoringSection = _described("Factor scoring.")
    portfolio: PortfolioRules = _described("Portfolio construction.")
    costs: CostRules = _described("Transaction costs.", CostRules())
    trading: TradingRules = _described("Trading-model overrides.", TradingRules())


class StaggeredDocument(FactorDocument):
    """A strategy file of kind ``staggered``: a factor strategy bought in tranches."""

    staggered: StaggeredRules = _described("Tranche rules.")

    @model_validator(mode="after")
    def _book_size(self) -> StaggeredDocument:
        full = self.staggered.buy_per_rebalance * self.staggered.hold_periods
        if self.portfolio.top_n != full:
            raise problem(
                "portfolio.top_n",
                f"must equal staggered.buy_per_rebalance x hold_periods = {full} "
                f"(the number of positions once the book is full), got {self.portfolio.top_n}",
            )
        return self


class SignalDocument(_Document):
    """A strategy file of kind ``signal``."""

    signal: SignalSection = _described("The technical signal and its position rules.")
    costs: CostRules = _described("Transaction costs.", CostRules())
    trading: TradingRules = _described("Trading-model overrides.", TradingRules())


class BlendDocument(_Document):
    """A strategy file of kind ``blend``."""

    blend: BlendSection = _described("Sleeves and re-weighting.")

    @model_validator(mode="after")
    def _not_itself(self) -> BlendDocument:
        if self.name in self.blend.sleeves:
            raise problem(f"blend.sleeves.{self.name}", "a blend cannot contain itself")
        return self


DOCUMENTS: dict[str, type[_Document]] = {
    "factor": FactorDocument,
    "staggered": StaggeredDocument,
    "signal": SignalDocument,
    "blend": BlendDocument,
}


# --------------------------------------------------------------------------------------------
# The spec the pipeline uses (sections with the same shape as the file are the models above).


@dataclass(frozen=True)
class FactorWeight:
    """One factor of a group: its weight inside the group and its direction."""

    factor: str
    weight: float
    higher_is_better: bool = True


@dataclass(frozen=True)
class FactorGroup:
    """A named group of factors (quality, growth, ...) and its weight in the composite."""

    name: str
    weight: float
    factors: tuple[FactorWeight, ...]


@dataclass(frozen=True)
class UniverseRules:
    """Eligibility filters applied on top of ``in_universe`` (None = no bound)."""

    min_market_cap: float | None = None
    max_market_cap: float | None = None
    min_avg_volume: float | None = None
    min_avg_dollar_volume: float | None = None
    min_price: float | None = None
    exclude_sectors: tuple[str, ...] = ()
    include_sectors: tuple[str, ...] | None = None
    # curated.securities country; a name whose country is unknown (null) passes
    countries: tuple[str, ...] | None = None
    # (factor, min, max): bounds on any factors.values column; a missing value fails
    screens: tuple[tuple[str, float | None, float | None], ...] = ()
    # curated.securities exchange; a name whose exchange is unknown (null) fails
    exchanges: tuple[str, ...] | None = None
    # a named screen file (quant_pipeline/screens/<screen>.yaml) and its rules, attached by
    # quant_pipeline.config.strategies when the file is read (core reads no file)
    screen: str | None = None
    screen_rules: ScreenRules | None = None


@dataclass(frozen=True)
class ScoringRules:
    """How factor values become one score per ticker and date."""

    method: str
    groups: tuple[FactorGroup, ...]
    winsorize: tuple[float, float] | None = None
    min_weight_available: float = 0.5

    @property
    def factors(self) -> tuple[str, ...]:
        """Every factor used, in file order."""
        return tuple(f.factor for g in self.groups for f in g.factors)


@dataclass(frozen=True)
class SignalRules:
    """kind signal: a technical signal (core/strategies/technical_signals.py) as daily weights."""

    signal: str
    params: tuple[tuple[str, Any], ...]
    max_positions: int
    sizing: str = "slot"
    stop_loss: float | None = None
    use_earnings: bool = True
    max_sector_weight: float | None = None

    @property
    def param_dict(self) -> dict[str, Any]:
        return dict(self.params)


def sector_name_limit(cap: float | None, n: int) -> int:
    """The most names one sector may hold in a book of ``n``: floor(cap x n), at least 1 (n if
    no cap). One rule for every kind (factor top_n, staggered top_n, signal max_positions)."""
    if cap is None:
        return n
    return max(1, math.floor(cap * n + 1e-9))


@dataclass(frozen=True)
class BlendRules:
    """kind blend: fixed weights on other strategies' daily returns, re-weighted periodically."""

    sleeves: tuple[tuple[str, float], ...]
    rebalance: str = "monthly"


@dataclass(frozen=True)
class StrategySpec:
    """A validated strategy. ``config_hash`` identifies the configuration that produced a result.

    ``scoring`` and ``portfolio`` are None for kinds signal and blend; ``rebalance`` is
    ``"daily"`` for kind signal and the sleeve re-weighting frequency for kind blend.
    """

    name: str
    description: str
    rebalance: str
    universe: UniverseRules
    scoring: ScoringRules | None
    portfolio: PortfolioRules | None
    costs: CostRules
    trading: TradingRules = field(default_factory=TradingRules)
    source: Path | None = field(default=None, compare=False)
    # strategy kinds beyond plain factor strategies: see the end of this module
    kind: str = "factor"
    staggered: StaggeredRules | None = None
    signal: SignalRules | None = None
    blend: BlendRules | None = None
    # a ticker this strategy is compared with when backtest.benchmarks has it
    benchmark: str | None = None

    @property
    def scored(self) -> bool:
        """True when the strategy ranks factors.values (kinds factor and staggered)."""
        return self.kind in ("factor", "staggered")

    def to_dict(self) -> dict[str, Any]:
        """The normalised configuration (defaults filled in, weights as floats), JSON-ready.

        Fields added after the first release are left out while they hold their defaults, so
        the hash of an unchanged factor strategy is unchanged.
        """
        out = _plain(self)
        out.pop("source")
        for key, default in _LATER_DEFAULTS.items():
            if out.get(key) == default:
                out.pop(key)
        for key, default in _PORTFOLIO_LATER_DEFAULTS.items():
            if out.get("portfolio") and out["portfolio"].get(key) == default:
                out["portfolio"].pop(key)
        for key in ("countries", "screens", "exchanges", "screen", "screen_rules"):
            if out["universe"] and not out["universe"].get(key):
                out["universe"].pop(key, None)
        return json.loads(json.dumps(out))

    @property
    def config_hash(self) -> str:
        """sha256 of the normalised configuration (key order and YAML spelling do not matter)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def _plain(value: Any) -> Any:
    """Dataclasses and models as dicts, tuples as lists (what ``to_dict`` hashes)."""
    if isinstance(value, BaseModel):
        return {k: _plain(getattr(value, k)) for k in type(value).model_fields}
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# portfolio fields added later, left out of the config hash while at their defaults
_PORTFOLIO_LATER_DEFAULTS: dict[str, Any] = {
    "max_weight": None,
    "turnover_limit": None,
    "lookback_days": TRADING_DAYS_PER_YEAR,
}
_LATER_DEFAULTS: dict[str, Any] = {
    "trading": dict.fromkeys(TradingRules.model_fields),
    "kind": "factor",
    "staggered": None,
    "signal": None,
    "blend": None,
    "benchmark": None,
}


# --------------------------------------------------------------------------------------------
# Document -> spec.


def _floats(section: StrictSection) -> dict[str, Any]:
    """The section's set fields, numbers as floats (the config hash must not see 1 vs 1.0)."""
    out = {}
    for key, value in section.model_dump(exclude_none=True).items():
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        out[key] = float(value) if is_number else value
    return out


def _universe(u: UniverseSection) -> UniverseRules:
    bounds = _floats(u.model_copy(update={"exclude_sectors": None, "screens": None}))
    for key in ("include_sectors", "countries", "exchanges"):
        if key in bounds:
            bounds[key] = tuple(bounds[key])
    screens = tuple(
        (name, None if b.min is None else float(b.min), None if b.max is None else float(b.max))
        for name, b in (u.screens or {}).items()
    )
    return UniverseRules(**bounds, exclude_sectors=tuple(u.exclude_sectors or ()), screens=screens)


def _group(name: str, weight: float, factors: Mapping[str, FactorEntry]) -> FactorGroup:
    weights = _factor_weights(factors, "factors")
    return FactorGroup(
        name=name,
        weight=float(weight),
        factors=tuple(
            FactorWeight(f, w, e.higher_is_better)
            for (f, e), w in zip(factors.items(), weights, strict=True)
        ),
    )


def _scoring(s: ScoringSection) -> ScoringRules:
    if s.factors is not None:
        groups = (_group("all", 1.0, s.factors),)
    else:
        groups = tuple(_group(n, g.weight, g.factors or {}) for n, g in (s.groups or {}).items())
    return ScoringRules(
        method=s.method,
        groups=groups,
        winsorize=s.winsorize,
        min_weight_available=float(s.min_weight_available),
    )


def _factor_spec(doc: FactorDocument) -> StrategySpec:
    return StrategySpec(
        name=doc.name,
        description=(doc.description or "").strip(),
        rebalance=doc.rebalance,
        universe=_universe(doc.universe),
        scoring=_scoring(doc.scoring),
        portfolio=doc.portfolio,
        costs=doc.costs,
        trading=doc.trading,
        benchmark=doc.benchmark,
    )


def _signal_spec(doc: SignalDocument) -> StrategySpec:
    s = doc.signal
    return StrategySpec(
        name=doc.name,
        description=(doc.description or "").strip(),
        rebalance="daily",
        universe=UniverseRules(),
        scoring=None,
        portfolio=None,
        costs=doc.costs,
        trading=doc.trading,
        kind="signal",
        signal=SignalRules(
            signal=s.name,
            params=tuple(sorted((s.params or {}).items())),
            max_positions=s.max_positions,
            sizing=s.sizing,
            stop_loss=None if s.stop_loss is None else float(s.stop_loss),
            use_earnings=s.use_earnings,
            max_sector_weight=None if s.max_sector_weight is None else float(s.max_sector_weight),
        ),
    )


def _blend_spec(doc: BlendDocument) -> StrategySpec:
    return StrategySpec(
        name=doc.name,
        description=(doc.description or "").strip(),
        rebalance=doc.blend.rebalance,
        universe=UniverseRules(),
        scoring=None,
        portfolio=None,
        costs=CostRules(),
        kind="blend",
        blend=BlendRules(
            sleeves=tuple((n, float(w)) for n, w in doc.blend.sleeves.items()),
            rebalance=doc.blend.rebalance,
        ),
    )


def spec_from_document(doc: _Document) -> StrategySpec:
    """The :class:`StrategySpec` of a validated document."""
    if isinstance(doc, StaggeredDocument):
        base = _factor_spec(doc)
        return StrategySpec(**{**base.__dict__, "kind": "staggered", "staggered": doc.staggered})
    if isinstance(doc, FactorDocument):
        return _factor_spec(doc)
    if isinstance(doc, SignalDocument):
        return _signal_spec(doc)
    assert isinstance(doc, BlendDocument)
    return _blend_spec(doc)


def parse_strategy(raw: Any, file: str = "<strategy>", source: Path | None = None) -> StrategySpec:
    """Validate a parsed YAML document (a dict) and return its :class:`StrategySpec`.

    ``source`` is recorded on the spec (the file it came from); reading files is the caller's.
    """
    if not isinstance(raw, Mapping):
        raise StrategyConfigError(file, "", f"must be a mapping, got {type(raw).__name__} {raw!r}")
    kind = raw.get("kind", "factor")
    if kind not in KINDS:
        raise StrategyConfigError(file, "kind", f"unknown value {kind!r}", KINDS)
    model = DOCUMENTS[kind]
    try:
        doc = model.model_validate(raw)
    except ValidationError as exc:
        p = first_problem(exc, model)
        raise StrategyConfigError(file, p.path, p.problem, p.allowed) from None
    spec = spec_from_document(doc)
    return spec if source is None else StrategySpec(**{**spec.__dict__, "source": source})


# Screen rules a strategy can use: the columns of factors.values plus the profile's exchange and
# country. Float and spread are computed by the universe screen for one date, not per rebalance.
STRATEGY_SCREEN_UNSUPPORTED: tuple[str, ...] = ("min_float_shares", "max_spread")


def with_screen(spec: StrategySpec, rules: ScreenRules, file: str) -> StrategySpec:
    """``spec`` with the rules of its named screen attached (they join its eligibility).

    Refuses rules a strategy cannot apply on every rebalance date (float, spread) and factor
    rules on unknown factors, naming the screen file and the rule."""
    for rule in STRATEGY_SCREEN_UNSUPPORTED:
        if getattr(rules, rule) is not None:
            raise StrategyConfigError(
                file,
                rule,
                f"is not available to strategies (universe.screen of {spec.name!r}): it is "
                "computed by the universe screen for one date, not per rebalance",
            )
    for factor in rules.factors:
        if factor not in FACTOR_NAMES:
            raise StrategyConfigError(file, f"factors.{factor}", "unknown factor", FACTOR_NAMES)
    universe = replace(spec.universe, screen_rules=rules)
    return StrategySpec(**{**spec.__dict__, "universe": universe})


def validate_blend_sleeves(specs: Mapping[str, StrategySpec]) -> None:
    """Every blend sleeve names a loaded strategy that is not itself a blend."""
    for spec in specs.values():
        if spec.blend is None:
            continue
        allowed = sorted(n for n, s in specs.items() if s.kind != "blend")
        for sleeve, _ in spec.blend.sleeves:
            if sleeve not in allowed:
                raise StrategyConfigError(
                    str(spec.source or spec.name),
                    f"blend.sleeves.{sleeve}",
                    "is not a strategy that can be a sleeve (unknown, or itself a blend)",
                    allowed,
                )


def with_blend_sleeves(
    specs: Mapping[str, StrategySpec], available: Mapping[str, StrategySpec]
) -> dict[str, StrategySpec]:
    """``specs`` plus the sleeves its blends need (taken from ``available``), sorted by name."""
    out = dict(specs)
    for spec in specs.values():
        if spec.blend is not None:
            for sleeve, _ in spec.blend.sleeves:
                out.setdefault(sleeve, available[sleeve])
    return dict(sorted(out.items()))


_MOVED = {"load_strategy", "load_strategies", "STRATEGIES_DIR"}


def __getattr__(name: str) -> Any:
    # core is pure: reading strategy files moved to the application side (issue 11)
    if name in _MOVED:
        raise AttributeError(
            f"{name} moved from quant_pipeline.core.strategies.spec to "
            f"quant_pipeline.config.strategies (core parses dicts; config reads files)"
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

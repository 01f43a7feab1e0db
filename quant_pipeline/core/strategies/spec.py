"""Strategies are data: YAML files in ``quant_pipeline/strategies/`` loaded into frozen specs.

The schema is documented in ``docs/strategies.md``. Everything is validated when a file is
loaded (unknown fields, unknown factor names, non-positive weights, group weights not summing to
1, unknown enum values), and every error names the file, the field path and the allowed values,
so a typo fails at load time instead of silently scoring on nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from quant_pipeline.core.data.calendar import FREQUENCIES
from quant_pipeline.core.data.schema import SECTORS
from quant_pipeline.core.factors.values import FACTOR_NAMES
from quant_pipeline.core.strategies.technical_signals import SIGNALS, build_signal

STRATEGIES_DIR = Path(__file__).resolve().parents[2] / "strategies"
SCORING_METHODS: tuple[str, ...] = ("weighted_zscore", "rank_sum")
WEIGHTINGS: tuple[str, ...] = ("equal",)
WEIGHT_TOLERANCE = 1e-6
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")

TOP_FIELDS = (
    "name",
    "description",
    "rebalance",
    "universe",
    "scoring",
    "portfolio",
    "costs",
    "trading",
)
UNIVERSE_FIELDS = (
    "min_market_cap",
    "max_market_cap",
    "min_avg_volume",
    "min_avg_dollar_volume",
    "min_price",
    "exclude_sectors",
    "include_sectors",
    "countries",
    "screens",
)
SCORING_FIELDS = ("method", "winsorize", "min_weight_available", "groups", "factors")
GROUP_FIELDS = ("weight", "factors")
FACTOR_FIELDS = ("weight", "higher_is_better")
PORTFOLIO_FIELDS = ("top_n", "weighting", "max_sector_weight")
COSTS_FIELDS = ("bps",)
TRADING_FIELDS = (
    "capital",
    "fractional",
    "commission_per_share",
    "commission_minimum",
    "commission_maximum_pct",
    "commission_bps",
    "slippage_bps",
    "cash_rate",
)


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
class PortfolioRules:
    """How the ranked names become target weights."""

    top_n: int
    weighting: str = "equal"
    max_sector_weight: float | None = None


@dataclass(frozen=True)
class CostRules:
    """Transaction costs, in basis points of traded value."""

    bps: float = 0.0


@dataclass(frozen=True)
class TradingRules:
    """Per-strategy overrides of the run's trading model (None = use the run's setting)."""

    capital: float | None = None
    fractional: bool | None = None
    commission_per_share: float | None = None
    commission_minimum: float | None = None
    commission_maximum_pct: float | None = None
    commission_bps: float | None = None
    slippage_bps: float | None = None
    cash_rate: float | None = None

    def overrides(self) -> dict[str, Any]:
        """The fields set in the file, by name."""
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class StaggeredRules:
    """kind staggered: each rebalance buy the next best names not held; hold each a fixed time."""

    buy_per_rebalance: int
    hold_periods: int
    sizing: str = "slot"


@dataclass(frozen=True)
class SignalRules:
    """kind signal: a technical signal (core/strategies/technical_signals.py) as daily weights."""

    signal: str
    params: tuple[tuple[str, Any], ...]
    max_positions: int
    sizing: str = "slot"
    stop_loss: float | None = None
    use_earnings: bool = True

    @property
    def param_dict(self) -> dict[str, Any]:
        return dict(self.params)


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

    @property
    def scored(self) -> bool:
        """True when the strategy ranks factors.values (kinds factor and staggered)."""
        return self.kind in ("factor", "staggered")

    def to_dict(self) -> dict[str, Any]:
        """The normalised configuration (defaults filled in, weights as floats), JSON-ready.

        Fields added after the first release are left out while they hold their defaults, so
        the hash of an unchanged factor strategy is unchanged.
        """
        out = asdict(self)
        out.pop("source")
        for key, default in _LATER_DEFAULTS.items():
            if out.get(key) == default:
                out.pop(key)
        for key in ("countries", "screens"):
            if out["universe"] and not out["universe"].get(key):
                out["universe"].pop(key, None)
        return json.loads(json.dumps(out))

    @property
    def config_hash(self) -> str:
        """sha256 of the normalised configuration (key order and YAML spelling do not matter)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


_LATER_DEFAULTS: dict[str, Any] = {
    "trading": {key: None for key in TRADING_FIELDS},
    "kind": "factor",
    "staggered": None,
    "signal": None,
    "blend": None,
}


class _Parser:
    def __init__(self, file: str):
        self.file = file

    def fail(self, path: str, problem: str, allowed: Iterable[Any] | None = None) -> None:
        raise StrategyConfigError(self.file, path, problem, allowed)

    def mapping(self, value: Any, path: str, fields: Iterable[str] | None) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(path, f"must be a mapping, got {type(value).__name__} {value!r}")
        if fields is not None:
            for key in value:
                if key not in fields:
                    self.fail(f"{path}.{key}" if path else str(key), "unknown field", fields)
        return dict(value)

    def number(
        self, value: Any, path: str, *, positive: bool = False, optional: bool = True
    ) -> float | None:
        if value is None:
            if optional:
                return None
            self.fail(path, "is required")
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            self.fail(path, f"must be a number, got {value!r}")
        if positive and value <= 0:
            self.fail(path, f"must be positive, got {value!r}")
        if value < 0:
            self.fail(path, f"must not be negative, got {value!r}")
        return float(value)

    def choice(self, value: Any, path: str, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            self.fail(path, f"unknown value {value!r}", allowed)
        return value

    def sectors(self, value: Any, path: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            self.fail(path, f"must be a list of sectors, got {value!r}", SECTORS)
        for i, sector in enumerate(value):
            self.choice(sector, f"{path}[{i}]", SECTORS)
        return tuple(value)


def parse_strategy(raw: Any, file: str = "<strategy>") -> StrategySpec:
    """Validate a parsed YAML document and return its :class:`StrategySpec`."""
    p = _Parser(file)
    kind = parse_kind(p, raw)
    if kind in ("signal", "blend"):
        return parse_kind_sections(p, raw, kind)
    extra = ("kind", "staggered") if kind == "staggered" else ("kind",)
    doc = p.mapping(raw, "", (*TOP_FIELDS, *extra))
    for key in ("name", "rebalance", "scoring", "portfolio"):
        if key not in doc:
            p.fail(key, "is required")
    name = parse_name(p, doc)
    description = parse_description(p, doc)
    rebalance = p.choice(doc["rebalance"], "rebalance", FREQUENCIES)

    u = p.mapping(doc.get("universe") or {}, "universe", UNIVERSE_FIELDS)
    include = u.get("include_sectors")
    universe = UniverseRules(
        min_market_cap=p.number(u.get("min_market_cap"), "universe.min_market_cap"),
        max_market_cap=p.number(u.get("max_market_cap"), "universe.max_market_cap"),
        min_avg_volume=p.number(u.get("min_avg_volume"), "universe.min_avg_volume"),
        min_avg_dollar_volume=p.number(
            u.get("min_avg_dollar_volume"), "universe.min_avg_dollar_volume"
        ),
        min_price=p.number(u.get("min_price"), "universe.min_price"),
        exclude_sectors=p.sectors(u.get("exclude_sectors") or [], "universe.exclude_sectors"),
        include_sectors=None if include is None else p.sectors(include, "universe.include_sectors"),
        countries=_countries(p, u.get("countries")),
        screens=parse_screens(p, u.get("screens"), FACTOR_NAMES),
    )
    if (
        universe.min_market_cap is not None
        and universe.max_market_cap is not None
        and universe.min_market_cap > universe.max_market_cap
    ):
        p.fail("universe.max_market_cap", "must be >= universe.min_market_cap")

    scoring = _parse_scoring(p, doc["scoring"])

    pf = p.mapping(doc["portfolio"], "portfolio", PORTFOLIO_FIELDS)
    top_n = pf.get("top_n")
    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
        p.fail("portfolio.top_n", f"must be a whole number >= 1, got {top_n!r}")
    cap = p.number(pf.get("max_sector_weight"), "portfolio.max_sector_weight", positive=True)
    if cap is not None and cap > 1:
        p.fail("portfolio.max_sector_weight", f"must be in (0, 1], got {cap!r}")
    portfolio = PortfolioRules(
        top_n=top_n,
        weighting=p.choice(pf.get("weighting", "equal"), "portfolio.weighting", WEIGHTINGS),
        max_sector_weight=cap,
    )

    costs = parse_costs(p, doc)
    spec = StrategySpec(
        name=name,
        description=description.strip(),
        rebalance=rebalance,
        universe=universe,
        scoring=scoring,
        portfolio=portfolio,
        costs=costs,
        trading=_parse_trading(p, doc.get("trading")),
    )
    if kind == "staggered":
        spec = parse_kind_sections(p, doc, kind, spec)
    return spec


def parse_name(p: _Parser, doc: Mapping[str, Any]) -> str:
    if "name" not in doc:
        p.fail("name", "is required")
    name = doc["name"]
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        p.fail("name", f"must be lower_snake_case ({NAME_PATTERN.pattern}), got {name!r}")
    return name


def parse_description(p: _Parser, doc: Mapping[str, Any]) -> str:
    description = doc.get("description") or ""
    if not isinstance(description, str):
        p.fail("description", f"must be text, got {description!r}")
    return description


def parse_costs(p: _Parser, doc: Mapping[str, Any]) -> CostRules:
    c = p.mapping(doc.get("costs") or {}, "costs", COSTS_FIELDS)
    return CostRules(bps=p.number(c.get("bps", 0.0), "costs.bps", optional=False) or 0.0)


def _countries(p: _Parser, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        p.fail("universe.countries", f"must be a non-empty list of country names, got {value!r}")
    return tuple(value)


def _parse_trading(p: _Parser, raw: Any) -> TradingRules:
    """The optional ``trading:`` section: overrides of the run's trading model."""
    t = p.mapping(raw or {}, "trading", TRADING_FIELDS)
    values: dict[str, Any] = {}
    for key in TRADING_FIELDS:
        if key not in t:
            continue
        value = t[key]
        path = f"trading.{key}"
        if key == "fractional":
            if not isinstance(value, bool):
                p.fail(path, f"must be true or false, got {value!r}")
            values[key] = value
        elif key == "cash_rate":
            if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
                p.fail(path, f"must be a number, got {value!r}")
            if value <= -1:
                p.fail(path, f"must be > -1, got {value!r}")
            values[key] = float(value)
        else:
            values[key] = p.number(value, path, positive=key == "capital", optional=False)
    if values.get("slippage_bps", 0.0) >= 1e4:
        p.fail("trading.slippage_bps", f"must be < 10000, got {values['slippage_bps']!r}")
    return TradingRules(**values)


def _parse_scoring(p: _Parser, raw: Any) -> ScoringRules:
    s = p.mapping(raw, "scoring", SCORING_FIELDS)
    method = p.choice(s.get("method"), "scoring.method", SCORING_METHODS)
    if ("groups" in s) == ("factors" in s):
        p.fail("scoring", "give exactly one of 'groups' or 'factors'", ("groups", "factors"))
    if "factors" in s:
        group_docs = {"all": {"weight": 1.0, "factors": s["factors"]}}
        group_path = {"all": "scoring"}
    else:
        group_docs = p.mapping(s["groups"], "scoring.groups", None)
        group_path = {g: f"scoring.groups.{g}" for g in group_docs}
    if not group_docs:
        p.fail("scoring.groups", "needs at least one group")

    groups = []
    seen: dict[str, str] = {}
    for gname, graw in group_docs.items():
        gpath = group_path[gname]
        g = p.mapping(graw, gpath, GROUP_FIELDS)
        weight = p.number(g.get("weight"), f"{gpath}.weight", positive=True, optional=False)
        fdocs = p.mapping(g.get("factors"), f"{gpath}.factors", None)
        if not fdocs:
            p.fail(f"{gpath}.factors", "needs at least one factor", FACTOR_NAMES)
        factors = []
        for fname, fraw in fdocs.items():
            fpath = f"{gpath}.factors.{fname}"
            if fname not in FACTOR_NAMES:
                p.fail(fpath, f"unknown factor {fname!r}", FACTOR_NAMES)
            if fname in seen:
                p.fail(fpath, f"factor already used in {seen[fname]}")
            seen[fname] = fpath
            if isinstance(fraw, Mapping):
                f = p.mapping(fraw, fpath, FACTOR_FIELDS)
                fweight = p.number(f.get("weight"), f"{fpath}.weight", positive=True)
                hib = f.get("higher_is_better", True)
                if not isinstance(hib, bool):
                    p.fail(f"{fpath}.higher_is_better", f"must be true or false, got {hib!r}")
            elif fraw is None:
                fweight, hib = None, True
            else:
                fweight = p.number(fraw, fpath, positive=True)
                hib = True
            factors.append((fname, fweight, hib, fpath))
        given = [w for _, w, _, _ in factors if w is not None]
        if given and len(given) != len(factors):
            missing = [path for _, w, _, path in factors if w is None]
            p.fail(missing[0], "has no weight while other factors of the group do")
        if not given:
            factors = [(n, 1.0 / len(factors), h, fp) for n, _, h, fp in factors]
        total = sum(w for _, w, _, _ in factors)
        if abs(total - 1.0) > WEIGHT_TOLERANCE:
            p.fail(f"{gpath}.factors", f"factor weights must sum to 1, got {total:.6g}")
        groups.append(
            FactorGroup(
                name=gname,
                weight=weight,  # type: ignore[arg-type]
                factors=tuple(FactorWeight(n, w, h) for n, w, h, _ in factors),
            )
        )
    total = sum(g.weight for g in groups)
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        p.fail("scoring.groups", f"group weights must sum to 1, got {total:.6g}")

    wins = s.get("winsorize")
    if wins is not None:
        if (
            not isinstance(wins, list)
            or len(wins) != 2
            or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in wins)
            or not 0 <= wins[0] < wins[1] <= 1
        ):
            p.fail(
                "scoring.winsorize",
                f"must be [lower, upper] with 0 <= lower < upper <= 1, got {wins!r}",
            )
        if method != "weighted_zscore":
            p.fail("scoring.winsorize", f"only applies to method weighted_zscore, not {method!r}")
        wins = (float(wins[0]), float(wins[1]))
    mwa = p.number(
        s.get("min_weight_available", 0.5), "scoring.min_weight_available", optional=False
    )
    if mwa is None or not 0 < mwa <= 1:
        p.fail("scoring.min_weight_available", f"must be in (0, 1], got {mwa!r}")
    return ScoringRules(
        method=method, groups=tuple(groups), winsorize=wins, min_weight_available=mwa
    )  # type: ignore[arg-type]


def load_strategy(path: str | Path) -> StrategySpec:
    """Read and validate one strategy YAML file (errors name the file and the field)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise StrategyConfigError(str(path), "<document>", f"is not valid YAML: {exc}") from exc
    except OSError as exc:
        raise StrategyConfigError(str(path), "<file>", f"cannot be read: {exc}") from exc
    spec = parse_strategy(raw, str(path))
    return StrategySpec(**{**spec.__dict__, "source": path})


def load_strategies(
    directory: Path | None = None, names: Iterable[str] | None = None
) -> dict[str, StrategySpec]:
    """Every ``*.yaml``/``*.yml`` strategy in ``directory`` (default: the shipped strategies),
    keyed by ``name`` and sorted; restricted to ``names`` when given (an unknown name raises).
    """
    directory = Path(directory) if directory is not None else STRATEGIES_DIR
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    specs: dict[str, StrategySpec] = {}
    for file in files:
        spec = load_strategy(file)
        if spec.name in specs:
            raise StrategyConfigError(
                str(file), "name", f"{spec.name!r} is also defined in {specs[spec.name].source}"
            )
        specs[spec.name] = spec
    validate_blend_sleeves(specs)
    if names is not None:
        wanted = list(names)
        for name in wanted:
            if name not in specs:
                raise StrategyConfigError(
                    str(directory), "name", f"no strategy named {name!r}", sorted(specs)
                )
        specs = {n: specs[n] for n in wanted}
    return dict(sorted(specs.items()))


# --------------------------------------------------------------------------------------------
# Kinds beyond plain factor strategies: staggered, signal, blend (docs/strategies.md).

KINDS: tuple[str, ...] = ("factor", "staggered", "signal", "blend")
SIZINGS: tuple[str, ...] = ("slot", "equal")
STAGGERED_FIELDS = ("buy_per_rebalance", "hold_periods", "sizing")
SIGNAL_TOP_FIELDS = ("name", "description", "kind", "signal", "costs", "trading")
SIGNAL_FIELDS = ("name", "params", "max_positions", "sizing", "stop_loss", "use_earnings")
BLEND_TOP_FIELDS = ("name", "description", "kind", "blend")
BLEND_FIELDS = ("sleeves", "rebalance")
BLEND_FREQUENCIES: tuple[str, ...] = ("daily", *FREQUENCIES)
SCREEN_FIELDS = ("min", "max")


def parse_kind(p: _Parser, raw: Any) -> str:
    """The document's ``kind`` (default ``factor``), checked against :data:`KINDS`."""
    if not isinstance(raw, Mapping):
        p.fail("", f"must be a mapping, got {type(raw).__name__} {raw!r}")
    return p.choice(raw.get("kind", "factor"), "kind", KINDS)


def _whole(p: _Parser, value: Any, path: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        p.fail(path, f"must be a whole number >= {minimum}, got {value!r}")
    return value


def parse_screens(
    p: _Parser, raw: Any, factor_names: tuple[str, ...]
) -> tuple[tuple[str, float | None, float | None], ...]:
    """``universe.screens``: {factor: {min: x, max: y}}; bounds inclusive, either optional."""
    if raw is None:
        return ()
    doc = p.mapping(raw, "universe.screens", None)
    out = []
    for fname, bounds in doc.items():
        path = f"universe.screens.{fname}"
        if fname not in factor_names:
            p.fail(path, f"unknown factor {fname!r}", factor_names)
        b = p.mapping(bounds, path, SCREEN_FIELDS)
        low, high = b.get("min"), b.get("max")
        for key, value in (("min", low), ("max", high)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value)
            ):
                p.fail(f"{path}.{key}", f"must be a number, got {value!r}")
        if low is None and high is None:
            p.fail(path, "needs min or max", SCREEN_FIELDS)
        if low is not None and high is not None and low > high:
            p.fail(f"{path}.max", f"must be >= min ({low!r}), got {high!r}")
        out.append(
            (fname, None if low is None else float(low), None if high is None else float(high))
        )
    return tuple(out)


def parse_kind_sections(
    p: _Parser, raw: Any, kind: str, spec: StrategySpec | None = None
) -> StrategySpec:
    """The kind-specific part of a strategy: ``staggered`` completes ``spec``; ``signal`` and
    ``blend`` documents are parsed whole here (they have no scoring or portfolio)."""
    if kind == "staggered":
        assert spec is not None and spec.portfolio is not None
        if "staggered" not in raw:
            p.fail("staggered", "is required for kind staggered", STAGGERED_FIELDS)
        s = p.mapping(raw["staggered"], "staggered", STAGGERED_FIELDS)
        buy = _whole(p, s.get("buy_per_rebalance"), "staggered.buy_per_rebalance")
        hold = _whole(p, s.get("hold_periods"), "staggered.hold_periods")
        if spec.portfolio.top_n != buy * hold:
            p.fail(
                "portfolio.top_n",
                f"must equal staggered.buy_per_rebalance x hold_periods = {buy * hold} "
                f"(the number of positions once the book is full), got {spec.portfolio.top_n}",
            )
        rules = StaggeredRules(
            buy_per_rebalance=buy,
            hold_periods=hold,
            sizing=p.choice(s.get("sizing", "slot"), "staggered.sizing", SIZINGS),
        )
        return StrategySpec(**{**spec.__dict__, "kind": kind, "staggered": rules})

    fields_ = SIGNAL_TOP_FIELDS if kind == "signal" else BLEND_TOP_FIELDS
    doc = p.mapping(raw, "", fields_)
    section = kind
    if section not in doc:
        p.fail(section, f"is required for kind {kind}")
    name = parse_name(p, doc)
    description = parse_description(p, doc).strip()
    if kind == "signal":
        rules = _parse_signal(p, doc["signal"])
        return StrategySpec(
            name=name,
            description=description,
            rebalance="daily",
            universe=UniverseRules(),
            scoring=None,
            portfolio=None,
            costs=parse_costs(p, doc),
            trading=_parse_trading(p, doc.get("trading")),
            kind=kind,
            signal=rules,
        )
    blend = _parse_blend(p, doc["blend"], name)
    return StrategySpec(
        name=name,
        description=description,
        rebalance=blend.rebalance,
        universe=UniverseRules(),
        scoring=None,
        portfolio=None,
        costs=CostRules(),
        kind=kind,
        blend=blend,
    )


def _parse_signal(p: _Parser, raw: Any) -> SignalRules:
    s = p.mapping(raw, "signal", SIGNAL_FIELDS)
    signal = p.choice(s.get("name"), "signal.name", tuple(sorted(SIGNALS)))
    params = p.mapping(s.get("params") or {}, "signal.params", None)
    allowed = tuple(f for f in SIGNALS[signal].__dataclass_fields__)
    for key in params:
        if key not in allowed:
            p.fail(f"signal.params.{key}", f"unknown parameter of signal {signal!r}", allowed)
    try:
        build_signal(signal, params)
    except ValueError as exc:
        bad = re.search(r"parameter '(\w+)'", str(exc))
        path = f"signal.params.{bad.group(1)}" if bad else "signal.params"
        p.fail(path, str(exc))
    stop = p.number(s.get("stop_loss"), "signal.stop_loss", positive=True)
    if stop is not None and stop >= 1:
        p.fail("signal.stop_loss", f"must be a fraction in (0, 1), got {stop!r}")
    use_earnings = s.get("use_earnings", True)
    if not isinstance(use_earnings, bool):
        p.fail("signal.use_earnings", f"must be true or false, got {use_earnings!r}")
    return SignalRules(
        signal=signal,
        params=tuple(sorted((k, v) for k, v in params.items())),
        max_positions=_whole(p, s.get("max_positions"), "signal.max_positions"),
        sizing=p.choice(s.get("sizing", "slot"), "signal.sizing", SIZINGS),
        stop_loss=stop,
        use_earnings=use_earnings,
    )


def _parse_blend(p: _Parser, raw: Any, name: str) -> BlendRules:
    b = p.mapping(raw, "blend", BLEND_FIELDS)
    sleeves = p.mapping(b.get("sleeves"), "blend.sleeves", None)
    if len(sleeves) < 2:
        p.fail("blend.sleeves", f"needs at least two strategies, got {len(sleeves)}")
    out = []
    for sleeve, weight in sleeves.items():
        path = f"blend.sleeves.{sleeve}"
        if sleeve == name:
            p.fail(path, "a blend cannot contain itself")
        out.append((sleeve, p.number(weight, path, positive=True, optional=False)))
    total = sum(w for _, w in out)
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        p.fail("blend.sleeves", f"sleeve weights must sum to 1, got {total:.6g}")
    return BlendRules(
        sleeves=tuple(out),  # type: ignore[arg-type]
        rebalance=p.choice(b.get("rebalance", "monthly"), "blend.rebalance", BLEND_FREQUENCIES),
    )


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

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

from quant_pipeline.core.calendar import FREQUENCIES
from quant_pipeline.core.factors import FACTOR_NAMES
from quant_pipeline.core.schema import SECTORS

STRATEGIES_DIR = Path(__file__).resolve().parent.parent / "strategies"
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
class StrategySpec:
    """A validated strategy. ``config_hash`` identifies the configuration that produced a result."""

    name: str
    description: str
    rebalance: str
    universe: UniverseRules
    scoring: ScoringRules
    portfolio: PortfolioRules
    costs: CostRules
    trading: TradingRules = field(default_factory=TradingRules)
    source: Path | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The normalised configuration (defaults filled in, weights as floats), JSON-ready."""
        out = asdict(self)
        out.pop("source")
        return json.loads(json.dumps(out))

    @property
    def config_hash(self) -> str:
        """sha256 of the normalised configuration (key order and YAML spelling do not matter)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


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
    doc = p.mapping(raw, "", TOP_FIELDS)
    for key in ("name", "rebalance", "scoring", "portfolio"):
        if key not in doc:
            p.fail(key, "is required")
    name = doc["name"]
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        p.fail("name", f"must be lower_snake_case ({NAME_PATTERN.pattern}), got {name!r}")
    description = doc.get("description") or ""
    if not isinstance(description, str):
        p.fail("description", f"must be text, got {description!r}")
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

    c = p.mapping(doc.get("costs") or {}, "costs", COSTS_FIELDS)
    costs = CostRules(bps=p.number(c.get("bps", 0.0), "costs.bps", optional=False) or 0.0)
    return StrategySpec(
        name=name,
        description=description.strip(),
        rebalance=rebalance,
        universe=universe,
        scoring=scoring,
        portfolio=portfolio,
        costs=costs,
        trading=_parse_trading(p, doc.get("trading")),
    )


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
    if names is not None:
        wanted = list(names)
        for name in wanted:
            if name not in specs:
                raise StrategyConfigError(
                    str(directory), "name", f"no strategy named {name!r}", sorted(specs)
                )
        specs = {n: specs[n] for n in wanted}
    return dict(sorted(specs.items()))

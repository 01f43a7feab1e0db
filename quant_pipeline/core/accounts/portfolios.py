"""Portfolios are data: ``portfolios.yaml`` names the accounts that get orders.

Pure (yaml only). The file maps each portfolio name to how its orders are built; ``defaults``
fills whatever a portfolio leaves out::

    defaults:
      strategy: multifactor_smallcap
      max_price_age_days: 5
      health: {max_drawdown: 0.20, max_sector_weight: 0.40, max_position_weight: 0.25}
    portfolios:
      example_50k:
        strategy: magic_formula
        capital: 50000
      my_portfolio:
        holdings: inbox/my_portfolio.csv   # relative to the folder holding portfolios.yaml
        cash: 250

Every field of a portfolio (and of ``defaults``) is optional; see :data:`PORTFOLIO_FIELDS`.
An unknown field, a negative amount or a bad name fails at load time with the file, the field
path and the rule, like strategy files do.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from quant_pipeline.core.data.calendar import TRADING_DAYS_PER_YEAR

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
TOP_FIELDS = ("defaults", "portfolios")
HEALTH_FIELDS = ("max_drawdown", "max_sector_weight", "max_position_weight", "lookback_days")


class PortfoliosConfigError(ValueError):
    """``portfolios.yaml`` breaks the schema; the message names the file and the field path."""

    def __init__(self, file: str, path: str, problem: str):
        self.file = file
        self.path = path
        super().__init__(f"{file}: {path}: {problem}" if path else f"{file}: {problem}")


@dataclass(frozen=True)
class HealthLimits:
    """Limits the live-portfolio health checks enforce (fractions; ``lookback_days`` trading days).

    ``max_drawdown``: value below its peak over the lookback (0.20 = 20% down from the peak).
    ``max_sector_weight`` / ``max_position_weight``: share of the holdings' market value.
    """

    max_drawdown: float = 0.20
    max_sector_weight: float = 0.40
    max_position_weight: float = 0.25
    lookback_days: int = TRADING_DAYS_PER_YEAR


@dataclass(frozen=True)
class PortfolioSpec:
    """How one portfolio's orders are built. ``None`` strategy = the first one in the warehouse.

    ``capital``: new money to invest; ``holdings``: path of a holdings CSV (see docs/orders.md);
    at least one of them is needed when orders are built. ``cash``: cash already in the account.
    ``max_price_age_days``: refuse orders when prices are more business days old than this.
    """

    name: str
    strategy: str | None = None
    capital: float | None = None
    holdings: str | None = None
    cash: float = 0.0
    fractional: bool = False
    min_trade_value: float = 0.0
    sell_unlisted: bool = True
    commission: bool = True
    max_price_age_days: int = 5
    health: HealthLimits = field(default_factory=HealthLimits)

    def with_overrides(self, **changes: Any) -> PortfolioSpec:
        """A copy with every change that is not ``None`` applied (run config over file values)."""
        given = {k: v for k, v in changes.items() if v is not None}
        unknown = set(given) - {f.name for f in fields(self)}
        if unknown:
            raise PortfoliosConfigError("<overrides>", ",".join(sorted(unknown)), "unknown field")
        return replace(self, **given)


PORTFOLIO_FIELDS = tuple(f.name for f in fields(PortfolioSpec) if f.name != "name")


@dataclass(frozen=True)
class PortfoliosConfig:
    """The parsed file: ``defaults`` and the named portfolios (file order)."""

    defaults: PortfolioSpec
    portfolios: dict[str, PortfolioSpec]
    source: Path | None = None

    def get(self, name: str) -> PortfolioSpec:
        """The named portfolio, or the defaults under that name when the file does not list it."""
        if name in self.portfolios:
            return self.portfolios[name]
        return replace(self.defaults, name=name)

    def by_holdings_file(self, path: Path) -> PortfolioSpec | None:
        """The portfolio whose ``holdings`` is ``path`` (resolved), if any."""
        target = Path(path).resolve()
        for spec in self.portfolios.values():
            if spec.holdings and Path(spec.holdings).resolve() == target:
                return spec
        return None


def portfolio_name(text: str) -> str:
    """A usable portfolio name from free text (e.g. a file stem): other characters become ``_``."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", text.strip()).strip("_.-")
    return name or "portfolio"


def name_clashes(portfolio_of: dict[str, str]) -> dict[str, list[str]]:
    """Portfolios claimed by two or more files: ``portfolio_of`` maps a file name to the
    portfolio it feeds (e.g. ``a b.csv`` and ``a_b.csv`` both to ``a_b``); returns portfolio ->
    the sorted file names, for every portfolio with more than one file."""
    files: dict[str, list[str]] = {}
    for file, name in portfolio_of.items():
        files.setdefault(name, []).append(file)
    return {name: sorted(fs) for name, fs in sorted(files.items()) if len(fs) > 1}


def parse_portfolios(raw: Any, file: str = "<portfolios>", base: Path | None = None):
    """Validate a parsed YAML document; relative holdings paths are resolved against ``base``."""
    if raw is None:
        raw = {}
    doc = _mapping(raw, file, "", TOP_FIELDS)
    defaults = _spec(
        doc.get("defaults") or {}, file, "defaults", PortfolioSpec(name="defaults"), base
    )
    entries = _mapping(doc.get("portfolios") or {}, file, "portfolios", None)
    portfolios: dict[str, PortfolioSpec] = {}
    for name, body in entries.items():
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise PortfoliosConfigError(
                file, f"portfolios.{name}", f"name must match {NAME_PATTERN.pattern}"
            )
        start = replace(defaults, name=name)
        portfolios[name] = _spec(body or {}, file, f"portfolios.{name}", start, base)
    return PortfoliosConfig(defaults=defaults, portfolios=portfolios)


def load_portfolios(path: str | Path, required: bool = False) -> PortfoliosConfig:
    """Read ``portfolios.yaml``. A missing file gives no portfolios (or raises if ``required``)."""
    path = Path(path)
    if not path.exists():
        if required:
            raise PortfoliosConfigError(str(path), "", "does not exist")
        return PortfoliosConfig(defaults=PortfolioSpec(name="defaults"), portfolios={})
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PortfoliosConfigError(str(path), "", f"cannot be read as YAML: {exc}") from exc
    config = parse_portfolios(raw, str(path), base=path.resolve().parent)
    return replace(config, source=path)


def _mapping(value: Any, file: str, path: str, allowed: tuple[str, ...] | None) -> dict:
    if not isinstance(value, Mapping):
        raise PortfoliosConfigError(file, path, f"must be a mapping, got {value!r}")
    if allowed is not None:
        for key in value:
            if key not in allowed:
                raise PortfoliosConfigError(
                    file,
                    f"{path}.{key}" if path else str(key),
                    f"unknown field; allowed: {list(allowed)}",
                )
    return dict(value)


def _amount(value: Any, file: str, path: str, upper: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PortfoliosConfigError(file, path, f"must be a number, got {value!r}")
    if value < 0:
        raise PortfoliosConfigError(file, path, f"must not be negative, got {value!r}")
    if upper is not None and value > upper:
        raise PortfoliosConfigError(file, path, f"must be at most {upper}, got {value!r}")
    return float(value)


def _flag(value: Any, file: str, path: str) -> bool:
    if not isinstance(value, bool):
        raise PortfoliosConfigError(file, path, f"must be true or false, got {value!r}")
    return value


def _whole(value: Any, file: str, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PortfoliosConfigError(file, path, f"must be a whole number >= 0, got {value!r}")
    return value


def _spec(raw: Any, file: str, path: str, start: PortfolioSpec, base: Path | None) -> PortfolioSpec:
    doc = _mapping(raw, file, path, PORTFOLIO_FIELDS)
    changes: dict[str, Any] = {}
    for key, value in doc.items():
        where = f"{path}.{key}"
        if key == "strategy":
            if value is not None and not isinstance(value, str):
                raise PortfoliosConfigError(file, where, f"must be a strategy name, got {value!r}")
            changes[key] = value
        elif key == "capital":
            changes[key] = None if value is None else _amount(value, file, where)
        elif key in ("cash", "min_trade_value"):
            changes[key] = _amount(value, file, where)
        elif key in ("fractional", "sell_unlisted", "commission"):
            changes[key] = _flag(value, file, where)
        elif key == "max_price_age_days":
            changes[key] = _whole(value, file, where)
        elif key == "holdings":
            if value is not None and not isinstance(value, str):
                raise PortfoliosConfigError(file, where, f"must be a file path, got {value!r}")
            if value is not None and base is not None and not Path(value).is_absolute():
                value = str(base / value)
            changes[key] = value
        elif key == "health":
            h = _mapping(value or {}, file, where, HEALTH_FIELDS)
            limits = {}
            for hk, hv in h.items():
                if hk == "lookback_days":
                    limits[hk] = _whole(hv, file, f"{where}.{hk}")
                else:
                    limits[hk] = _amount(hv, file, f"{where}.{hk}", upper=1.0)
            changes[key] = replace(start.health, **limits)
    return replace(start, **changes)

"""Portfolios are data: the typed model of ``portfolios.yaml`` (the accounts that get orders).

Pure (pydantic; no file access: ``quant_pipeline.config.portfolios`` reads the file). The
document maps each portfolio name to how its orders are built; ``defaults`` fills whatever a
portfolio leaves out (``health`` key by key)::

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

:class:`PortfolioSpec` is the one definition of a portfolio's fields (docs/orders.md lists them
from it). An unknown field (the allowed ones are listed), a negative amount or a bad name fails
with the file, the key path and the rule, like strategy files do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator

from quant_pipeline.core.config_errors import StrictSection, first_problem
from quant_pipeline.core.data.calendar import TRADING_DAYS_PER_YEAR

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
TOP_FIELDS = ("defaults", "portfolios")


class PortfoliosConfigError(ValueError):
    """``portfolios.yaml`` breaks the schema; the message names the file and the field path."""

    def __init__(self, file: str, path: str, problem: str):
        self.file = file
        self.path = path
        super().__init__(f"{file}: {path}: {problem}" if path else f"{file}: {problem}")


def _fraction(default: float, description: str) -> Any:
    return Field(default=default, ge=0, le=1.0, allow_inf_nan=False, description=description)


class HealthLimits(StrictSection):
    """Limits the live-portfolio health checks enforce (fractions; ``lookback_days`` trading days).

    ``max_drawdown``: value below its peak over the lookback (0.20 = 20% down from the peak).
    ``max_sector_weight`` / ``max_position_weight``: share of the holdings' market value.
    """

    max_drawdown: float = _fraction(0.20, "Largest allowed fall below the lookback's peak value.")
    max_sector_weight: float = _fraction(0.40, "Largest share of market value in one sector.")
    max_position_weight: float = _fraction(0.25, "Largest share of market value in one name.")
    lookback_days: int = Field(
        default=TRADING_DAYS_PER_YEAR,
        ge=0,
        description="Trading days the drawdown peak looks back.",
    )


def _amount(default: float | None, description: str) -> Any:
    return Field(default=default, ge=0, allow_inf_nan=False, description=description)


class PortfolioSpec(StrictSection):
    """How one portfolio's orders are built. ``None`` strategy = the first one in the warehouse.

    ``capital``: new money to invest; ``holdings``: path of a holdings CSV (see docs/orders.md);
    at least one of them is needed when orders are built. ``cash``: cash already in the account.
    ``max_price_age_days``: refuse orders when prices are more business days old than this.
    ``theme``: a shipped theme (value, quality, ...) traded instead of ``strategy``;
    ``stocks``: the number of positions of the strategy or theme (any kind but blend).
    """

    name: str = Field(description="Portfolio name (the key in portfolios.yaml).")
    strategy: str | None = Field(
        default=None, description="Strategy name (default: the first one in the warehouse)."
    )
    theme: str | None = Field(
        default=None,
        description="Shipped theme (quant_pipeline/themes/) traded instead of the strategy.",
    )
    stocks: int | None = Field(
        default=None, ge=1, description="Number of stocks (default: the strategy's or theme's)."
    )
    capital: float | None = _amount(None, "New money to invest, in dollars.")
    holdings: str | None = Field(
        default=None, description="Holdings CSV (ticker, shares[, amount_invested])."
    )
    cash: float = _amount(0.0, "Cash already in the account, in dollars.")
    fractional: bool = Field(default=False, description="Allow fractional shares.")
    min_trade_value: float = _amount(0.0, "Skip trades worth less than this many dollars.")
    sell_unlisted: bool = Field(
        default=True, description="Sell holdings outside the strategy (false: keep them)."
    )
    commission: bool = Field(
        default=True, description="Charge Interactive Brokers fixed commissions (false: none)."
    )
    max_price_age_days: int = Field(
        default=5, ge=0, description="Refuse orders on prices older than this (business days)."
    )
    weight_change_threshold: float = _fraction(
        0.01, "Weight changes vs the previous packet listed above this (0.01 = 1 point)."
    )
    health: HealthLimits = Field(
        default_factory=HealthLimits, description="Live-portfolio health limits."
    )

    @field_validator("name")
    @classmethod
    def _usable_name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError(f"name must match {NAME_PATTERN.pattern}, got {value!r}")
        return value

    def with_overrides(self, origin: str = "<overrides>", **changes: Any) -> PortfolioSpec:
        """A copy with every change that is not ``None`` applied (run config over file values),
        validated by this model; errors name ``origin`` and the field."""
        given = {k: v for k, v in changes.items() if v is not None}
        return _validate({**self.model_dump(), **given}, origin, "")


PORTFOLIO_FIELDS = tuple(f for f in PortfolioSpec.model_fields if f != "name")
HEALTH_FIELDS = tuple(HealthLimits.model_fields)


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
        return self.defaults.model_copy(update={"name": name})

    def by_holdings_file(self, path: Path) -> PortfolioSpec | None:
        """The portfolio whose ``holdings`` is ``path`` (resolved), if any."""
        target = Path(path).resolve()
        for spec in self.portfolios.values():
            if spec.holdings and Path(spec.holdings).resolve() == target:
                return spec
        return None

    def with_source(self, path: Path) -> PortfoliosConfig:
        return replace(self, source=path)


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


def _validate(values: Mapping[str, Any], file: str, path: str) -> PortfolioSpec:
    try:
        return PortfolioSpec.model_validate(values)
    except ValidationError as exc:
        p = first_problem(exc, PortfolioSpec)
        where = ".".join(x for x in (path, p.path) if x)
        raise PortfoliosConfigError(file, where, p.message().removeprefix(f"{p.path}: ")) from None


def _section(raw: Any, file: str, path: str, allowed: tuple[str, ...] | None) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise PortfoliosConfigError(file, path, f"must be a mapping, got {raw!r}")
    for key in raw:
        if allowed is not None and key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            raise PortfoliosConfigError(file, where, f"unknown field; allowed: {list(allowed)}")
    return dict(raw)


def _entry(
    raw: Any, defaults: Mapping[str, Any], file: str, path: str, base: Path | None
) -> PortfolioSpec:
    """One portfolio: its own keys over ``defaults`` (``health`` merged key by key)."""
    own = _section(raw, file, path, PORTFOLIO_FIELDS)
    holdings = own.get("holdings")
    if isinstance(holdings, str) and base is not None and not Path(holdings).is_absolute():
        own["holdings"] = str(base / holdings)
    merged = {**defaults, **own}
    if isinstance(own.get("health"), Mapping):
        merged["health"] = {**(defaults.get("health") or {}), **own["health"]}
    return _validate(merged, file, path)


def parse_portfolios(
    raw: Any, file: str = "<portfolios>", base: Path | None = None
) -> PortfoliosConfig:
    """Validate a parsed YAML document; relative holdings paths are resolved against ``base``."""
    doc = _section(raw, file, "", TOP_FIELDS)
    defaults_raw = _section(doc.get("defaults"), file, "defaults", PORTFOLIO_FIELDS)
    defaults = _entry(defaults_raw, {"name": "defaults"}, file, "defaults", base)
    inherited = defaults.model_dump(exclude={"name"})
    portfolios: dict[str, PortfolioSpec] = {}
    for name, body in _section(doc.get("portfolios"), file, "portfolios", None).items():
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise PortfoliosConfigError(
                file, f"portfolios.{name}", f"name must match {NAME_PATTERN.pattern}"
            )
        spec = _entry(body, {**inherited, "name": name}, file, f"portfolios.{name}", base)
        portfolios[name] = spec
    return PortfoliosConfig(defaults=defaults, portfolios=portfolios)


def __getattr__(name: str) -> Any:
    # core is pure: reading portfolios.yaml moved to the application side (issue 11)
    if name == "load_portfolios":
        raise AttributeError(
            "load_portfolios moved from quant_pipeline.core.accounts.portfolios to "
            "quant_pipeline.config.portfolios (core parses dicts; config reads files)"
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

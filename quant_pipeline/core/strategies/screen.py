"""The universe screen: which names pass a person's rules on a date, and why the others failed.

Pure polars (and pydantic for the rules). Input is one row per candidate ticker as of date D::

    ticker | sector | exchange | country | price | market_cap | avg_dollar_volume
           | float_shares | spread | <any factors.values column named by a factor rule>

(``candidates`` from :func:`quant_pipeline.core.factors.values.factor_values` for D — prices
before D, fundamentals available before D — joined to the securities profile and
:func:`high_low_spread`). Rules are checked in :data:`RULE_ORDER`; a candidate's
``failed_rule`` is the first one it breaks, with the value that broke it. A value the data lacks
(null) fails its rule, except a null country or exchange under ``allow_unknown: true``.

Spread: the bid/ask spread when the source gives one (none of the shipped sources do), otherwise
the Corwin & Schultz (2012) high-low estimator averaged over the last ``SPREAD_WINDOW`` two-day
windows (negative estimates set to 0, as in the paper).
"""

from __future__ import annotations

import math

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from quant_pipeline.core.data.frames import require_columns
from quant_pipeline.core.data.schema import SECTORS

SPREAD_WINDOW = 21  # two-day high-low windows averaged for the spread proxy (about a month)

RULE_ORDER = (
    "min_price",
    "min_market_cap",
    "max_market_cap",
    "min_avg_dollar_volume",
    "min_float_shares",
    "max_spread",
    "sectors",
    "exchanges",
    "countries",
    "factors",
)


class ListRule(BaseModel):
    """Keep names whose value is in ``include`` (if given) and not in ``exclude``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    allow_unknown: bool = False


class Bounds(BaseModel):
    """Inclusive bounds on a factor; either may be left out."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Bounds:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        return self


class ScreenRules(BaseModel):
    """A screen; every rule is optional (no rule: every candidate passes)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    min_price: float | None = Field(default=None, ge=0)
    min_market_cap: float | None = Field(default=None, ge=0)
    max_market_cap: float | None = Field(default=None, gt=0)
    min_avg_dollar_volume: float | None = Field(default=None, ge=0)
    min_float_shares: float | None = Field(default=None, ge=0)
    max_spread: float | None = Field(default=None, gt=0, lt=1)
    sectors: ListRule | None = None
    exchanges: ListRule | None = None
    countries: ListRule | None = None
    factors: dict[str, Bounds] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_sectors(self) -> ScreenRules:
        if self.sectors is not None:
            named = set(self.sectors.include or ()) | set(self.sectors.exclude)
            unknown = sorted(named - set(SECTORS) - {"Unknown"})
            if unknown:
                raise ValueError(
                    f"sectors: unknown {unknown}; allowed: {', '.join(SECTORS)}, Unknown"
                )
        if (
            self.min_market_cap is not None
            and self.max_market_cap is not None
            and self.min_market_cap > self.max_market_cap
        ):
            raise ValueError("min_market_cap is above max_market_cap")
        return self


class ScreenInputError(ValueError):
    """The candidates frame lacks a column a rule reads."""


def _bound(column: str, low: float | None, high: float | None) -> pl.Expr:
    value = pl.col(column)
    ok = pl.lit(True)
    if low is not None:
        ok = ok & (value >= low)
    if high is not None:
        ok = ok & (value <= high)
    return ok.fill_null(False)


def _membership(column: str, rule: ListRule) -> pl.Expr:
    value = pl.col(column)
    ok = pl.lit(True)
    if rule.include is not None:
        ok = ok & value.is_in(list(rule.include))
    if rule.exclude:
        ok = ok & ~value.is_in(list(rule.exclude))
    return pl.when(value.is_null()).then(pl.lit(rule.allow_unknown)).otherwise(ok)


def rule_checks(rules: ScreenRules) -> list[tuple[str, pl.Expr, pl.Expr]]:
    """(rule name, passes, the value shown when it fails) for every rule that is set, in order."""
    checks: list[tuple[str, pl.Expr, pl.Expr]] = []
    numeric = {
        "min_price": ("price", rules.min_price, None),
        "min_market_cap": ("market_cap", rules.min_market_cap, None),
        "max_market_cap": ("market_cap", None, rules.max_market_cap),
        "min_avg_dollar_volume": ("avg_dollar_volume", rules.min_avg_dollar_volume, None),
        "min_float_shares": ("float_shares", rules.min_float_shares, None),
        "max_spread": ("spread", None, rules.max_spread),
    }
    for name in RULE_ORDER:
        if name in numeric:
            column, low, high = numeric[name]
            if low is not None or high is not None:
                checks.append((name, _bound(column, low, high), pl.col(column).cast(pl.String)))
        elif name in ("sectors", "exchanges", "countries"):
            rule = getattr(rules, name)
            column = {"sectors": "sector", "exchanges": "exchange", "countries": "country"}[name]
            if rule is not None:
                checks.append((name, _membership(column, rule), pl.col(column).cast(pl.String)))
        else:
            for factor, bounds in sorted(rules.factors.items()):
                checks.append(
                    (
                        f"factors.{factor}",
                        _bound(factor, bounds.min, bounds.max),
                        pl.col(factor).cast(pl.String),
                    )
                )
    return checks


def required_columns(rules: ScreenRules) -> set[str]:
    """Columns of the candidates frame the rules read."""
    cols = {"ticker"}
    for name, column in (
        ("min_price", "price"),
        ("min_market_cap", "market_cap"),
        ("max_market_cap", "market_cap"),
        ("min_avg_dollar_volume", "avg_dollar_volume"),
        ("min_float_shares", "float_shares"),
        ("max_spread", "spread"),
        ("sectors", "sector"),
        ("exchanges", "exchange"),
        ("countries", "country"),
    ):
        if getattr(rules, name) is not None:
            cols.add(column)
    return cols | set(rules.factors)


def screen(candidates: pl.DataFrame, rules: ScreenRules) -> pl.DataFrame:
    """Every candidate with ``passed``, its ``failed_rule`` (first broken, in RULE_ORDER) and the
    ``failed_value`` that broke it (as text; null when the data had no value), sorted by ticker."""
    require_columns(
        candidates, sorted(required_columns(rules)), "screen candidates", ScreenInputError
    )
    checks = rule_checks(rules)
    failed_rule: pl.Expr = pl.lit(None, dtype=pl.String)
    failed_value: pl.Expr = pl.lit(None, dtype=pl.String)
    for name, passes, shown in reversed(checks):  # the first failing rule wins
        failed_rule = pl.when(~passes).then(pl.lit(name)).otherwise(failed_rule)
        failed_value = pl.when(~passes).then(shown).otherwise(failed_value)
    return (
        candidates.with_columns(
            failed_rule.alias("failed_rule"), failed_value.alias("failed_value")
        )
        .with_columns(passed=pl.col("failed_rule").is_null())
        .sort("ticker")
    )


def screen_summary(result: pl.DataFrame, rules: ScreenRules) -> pl.DataFrame:
    """Per rule in order: ``failed_first`` (names it was the first to fail), ``failed_any``
    (names breaking it at all) and ``remaining`` (names still in after this and every earlier rule).
    A last row ``passed`` gives the names that pass every rule."""
    rows = []
    remaining = result.height
    for name, passes, _ in rule_checks(rules):
        first = int((result["failed_rule"] == name).sum())
        any_ = int(result.select((~passes).sum()).item())
        remaining -= first
        rows.append(
            {"rule": name, "failed_first": first, "failed_any": any_, "remaining": remaining}
        )
    rows.append(
        {
            "rule": "passed",
            "failed_first": 0,
            "failed_any": 0,
            "remaining": int(result["passed"].sum()),
        }
    )
    return pl.DataFrame(
        rows,
        schema={
            "rule": pl.String,
            "failed_first": pl.Int64,
            "failed_any": pl.Int64,
            "remaining": pl.Int64,
        },
    )


def high_low_spread(prices: pl.DataFrame, window: int = SPREAD_WINDOW) -> pl.DataFrame:
    """Corwin-Schultz spread per ticker from its last ``window`` two-day windows.

    ``prices``: ticker, date, high, low (rows dated before D only: the caller cuts). For days t-1,
    t: beta = ln(H_{t-1}/L_{t-1})^2 + ln(H_t/L_t)^2, gamma = ln(max(H)/min(L))^2 over both days,
    alpha = (sqrt(2 beta) - sqrt(beta)) / k - sqrt(gamma / k) with k = 3 - 2 sqrt(2), and
    S = 2 (e^alpha - 1) / (1 + e^alpha), floored at 0. Returns ticker, spread (the mean of S;
    null when a ticker has no two-day window with positive highs and lows).
    """
    k = 3 - 2 * math.sqrt(2)
    hl = (pl.col("high") / pl.col("low")).log() ** 2
    frame = (
        prices.select("ticker", "date", "high", "low")
        .filter((pl.col("high") > 0) & (pl.col("low") > 0) & (pl.col("high") >= pl.col("low")))
        .sort("ticker", "date")
        .with_columns(
            beta=(hl + hl.shift(1)).over("ticker"),
            gamma=(
                (
                    pl.max_horizontal("high", pl.col("high").shift(1))
                    / pl.min_horizontal("low", pl.col("low").shift(1))
                ).log()
                ** 2
            ).over("ticker"),
        )
        .drop_nulls(["beta", "gamma"])
    )
    alpha = ((2 * pl.col("beta")).sqrt() - pl.col("beta").sqrt()) / k - (pl.col("gamma") / k).sqrt()
    spread = (2 * (alpha.exp() - 1) / (1 + alpha.exp())).clip(lower_bound=0.0)
    return (
        frame.with_columns(spread.alias("_s"))
        .group_by("ticker")
        .agg(pl.col("_s").tail(window).mean().alias("spread"))
        .sort("ticker")
    )

"""The orders options: ONE model for the orders asset's run config and ``quant-pipeline orders``.

:class:`OrdersOptions` lists every option once. The Dagster ``OrdersConfig`` inherits its fields
(``defs/orders.py``), :func:`add_orders_arguments` builds the CLI flags from it, and
:meth:`OrdersOptions.portfolio_overrides` turns the options into overrides of the portfolio's
``portfolios.yaml`` entry (validated by ``core.accounts.portfolios.PortfolioSpec``).
"""

from __future__ import annotations

import argparse
from datetime import date
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from quant_pipeline.core.accounts.portfolios import PortfolioSpec

# Option -> PortfolioSpec field it overrides (the same name unless listed here).
SPEC_FIELD = {"holdings_file": "holdings"}


def _option(
    default: Any,
    description: str,
    flag: str | None = None,
    const: bool | None = None,
    ge: float | None = None,
    switch_help: str | None = None,
) -> Any:
    """A field; ``flag`` is its CLI option (``const``: a switch storing that value, described
    by ``switch_help``)."""
    extra = {"flag": flag, "const": const, "switch_help": switch_help}
    return Field(default=default, description=description, ge=ge, json_schema_extra=extra)


class OrdersOptions(BaseModel):
    """Which portfolio to build orders for; unset fields come from ``portfolios.yaml``."""

    portfolio: str = _option(
        "default",
        "Portfolio name: one from portfolios.yaml, or any name for an ad-hoc run.",
        "--portfolio",
    )
    strategy: str | None = _option(
        None, "Strategy name (default: portfolios.yaml, else the first one).", "--strategy"
    )
    theme: str | None = _option(
        None, "Shipped theme to trade instead of a strategy (quant_pipeline/themes/).", "--theme"
    )
    stocks: int | None = _option(
        None, "Number of stocks (default: the strategy's or theme's own).", "--stocks", ge=1
    )
    capital: float | None = _option(None, "New money to invest, in dollars.", "--capital", ge=0)
    holdings_file: str | None = _option(
        None, "Path of a holdings CSV (ticker, shares[, amount_invested]).", "--holdings"
    )
    cash: float | None = _option(None, "Cash already in the account.", "--cash", ge=0)
    fractional: bool | None = _option(None, "Allow fractional shares.", "--fractional", const=True)
    min_trade_value: float | None = _option(
        None, "Skip trades worth less than this many dollars.", "--min-trade", ge=0
    )
    sell_unlisted: bool | None = _option(
        None,
        "Sell holdings outside the strategy (false: keep them).",
        "--keep-unlisted",
        const=False,
        switch_help="keep holdings outside the strategy instead of selling them",
    )
    commission: bool | None = _option(
        None,
        "Charge Interactive Brokers fixed commissions (false: none).",
        "--no-commission",
        const=False,
        switch_help="no commission (default: Interactive Brokers fixed pricing)",
    )
    max_price_age_days: int | None = _option(
        None,
        "Refuse orders when prices are older than this (business days).",
        "--max-price-age",
        ge=0,
    )
    as_of: str | None = _option(
        None, "As-of date YYYY-MM-DD (default: today in New York).", "--as-of"
    )
    outbox: str | None = _option(
        None, "Packet folder (default: QUANT_PIPELINE_OUTBOX or outbox/).", "--outbox"
    )
    all_portfolios: bool = _option(
        False, "Build every portfolio of portfolios.yaml (quarterly run)."
    )
    holdings_sha256: str | None = _option(
        None, "Content hash the inbox sensor saw (checked, for the record)."
    )

    @field_validator("as_of")
    @classmethod
    def _iso_date(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"as_of {value!r} is not a date (YYYY-MM-DD)") from None
        return value

    @model_validator(mode="after")
    def _one_book(self) -> OrdersOptions:
        if self.theme is not None and self.strategy is not None:
            raise ValueError(
                f"give a strategy or a theme, not both ({self.strategy!r}, {self.theme!r})"
            )
        return self

    @property
    def as_of_date(self) -> date | None:
        return date.fromisoformat(self.as_of) if self.as_of else None

    def portfolio_overrides(self) -> dict[str, Any]:
        """The options that override a ``portfolios.yaml`` entry, by PortfolioSpec field name."""
        spec_fields = set(PortfolioSpec.model_fields)
        out = {}
        for name in type(self).model_fields:
            field = SPEC_FIELD.get(name, name)
            if field in spec_fields and field != "name":
                out[field] = getattr(self, name)
        return out


def orders_options_table() -> str:
    """The options as a Markdown table (run config field, CLI flag, meaning)."""
    lines = ["| run config field | CLI flag | meaning |", "|---|---|---|"]
    for name, info in OrdersOptions.model_fields.items():
        flag = (info.json_schema_extra or {}).get("flag")
        lines.append(f"| `{name}` | {f'`{flag}`' if flag else '—'} | {info.description} |")
    return "\n".join(lines)


def add_orders_arguments(parser: argparse.ArgumentParser) -> None:
    """One CLI option per :class:`OrdersOptions` field that has a flag; dest = the field name."""
    for name, info in OrdersOptions.model_fields.items():
        extra = info.json_schema_extra or {}
        flag = extra.get("flag")
        if flag is None:
            continue
        kwargs: dict[str, Any] = {
            "dest": name,
            "help": extra.get("switch_help") or info.description,
        }
        if extra.get("const") is not None:
            kwargs.update(action="store_const", const=extra["const"])
        else:
            kwargs["metavar"] = flag.lstrip("-").replace("-", "_").upper()
            kind = {float | None: float, int | None: int}.get(info.annotation, str)
            kwargs.update(type=kind)
            if info.default is not None:
                kwargs["default"] = info.default
        parser.add_argument(flag, **kwargs)


def options_from_args(args: argparse.Namespace) -> OrdersOptions:
    """The parsed CLI options as :class:`OrdersOptions` (validated; unset flags stay None)."""
    given = {n: getattr(args, n) for n in OrdersOptions.model_fields if hasattr(args, n)}
    return OrdersOptions(**{k: v for k, v in given.items() if v is not None})

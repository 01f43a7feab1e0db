"""``quant-pipeline screen`` and the ``universe/screened`` asset: run a universe screen on the
warehouse as of a date. Rules come from a YAML file (default: the shipped
``quant_pipeline/screens/default.yaml``, or ``QUANT_PIPELINE_SCREEN``)."""

from __future__ import annotations

import argparse
import os
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import yaml
from pydantic import ValidationError

from quant_pipeline.core.backtest.lookahead_audit import price_window
from quant_pipeline.core.data.schema import CLOSE_PRICE_COLUMNS, FIRST_SHARES
from quant_pipeline.core.data.share_basis import SHARE_BASIS_TABLE
from quant_pipeline.core.factors.values import factor_values
from quant_pipeline.core.strategies.screen import (
    ScreenRules,
    high_low_spread,
    screen,
    screen_summary,
)
from quant_pipeline.storage.warehouse import Warehouse

DEFAULT_RULES = Path(__file__).resolve().parents[1] / "screens" / "default.yaml"
OUTPUT_COLUMNS = [
    "ticker",
    "passed",
    "failed_rule",
    "failed_value",
    "sector",
    "exchange",
    "country",
    "price",
    "market_cap",
    "avg_dollar_volume",
    "float_shares",
    "spread",
]


class ScreenConfigError(ValueError):
    """A screen file that cannot be used: names the file, the key path and the rule."""


def rules_file(env: dict[str, str] | None = None) -> Path:
    value = (os.environ if env is None else env).get("QUANT_PIPELINE_SCREEN", "").strip()
    return Path(value) if value else DEFAULT_RULES


def load_rules(path: Path) -> ScreenRules:
    """Read and validate a screen file; every problem is named with its key path."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ScreenConfigError(f"{path}: cannot read the screen file: {exc}") from exc
    if not isinstance(raw, dict):
        raise ScreenConfigError(f"{path}: a screen file is a mapping of rules")
    try:
        return ScreenRules.model_validate(raw)
    except ValidationError as exc:
        allowed = ", ".join(ScreenRules.model_fields)
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "(top level)"
            message = error["msg"]
            if error["type"] == "extra_forbidden":
                message = f"unknown key; allowed at the top level: {allowed}"
            problems.append(f"{path}: {where}: {message}")
        raise ScreenConfigError("\n".join(problems)) from None


def candidates(warehouse: Warehouse, as_of: date | None = None) -> tuple[date, pl.DataFrame]:
    """(D, one row per ticker with the screen's inputs as of D). D defaults to the day after the
    last price (screening tomorrow morning on today's close); only data before D is used."""
    # what factor_values and the spread read: every other column would only take memory
    prices = warehouse.read_table("curated.prices", [*CLOSE_PRICE_COLUMNS, "high", "low"])
    if prices.is_empty():
        raise ValueError("curated.prices is empty: run the pipeline first")
    as_of = as_of or prices["date"].max() + timedelta(days=1)
    before = price_window(prices, before=as_of)
    fundamentals = _table(warehouse, "curated.fundamentals")
    # today's screen falls back on today's profile (no lookahead now), not the first on file
    securities = _table(warehouse, "curated.securities").drop(FIRST_SHARES, strict=False)
    membership = _table(warehouse, "curated.membership")
    values = factor_values(
        before,
        fundamentals,
        securities,
        [as_of],
        membership if membership.height else None,
        share_basis=_table(warehouse, SHARE_BASIS_TABLE),
    )
    profile = securities.select(
        "ticker",
        *(c for c in ("exchange", "country", "float_shares") if c in securities.columns),
    )
    frame = values.join(profile, on="ticker", how="left").join(
        high_low_spread(before.filter(pl.col("date") >= before["date"].max() - timedelta(days=45))),
        on="ticker",
        how="left",
    )
    for column in ("exchange", "country"):
        if column not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(column))
    if "float_shares" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Float64).alias("float_shares"))
    return as_of, frame.filter(pl.col("in_universe"))


def _table(warehouse: Warehouse, table: str) -> pl.DataFrame:
    return warehouse.read_table(table) if warehouse.has_table(table) else pl.DataFrame()


def run_screen(
    warehouse: Warehouse, rules: ScreenRules, as_of: date | None = None
) -> tuple[date, pl.DataFrame, pl.DataFrame]:
    """(D, every candidate with pass/fail and reason, the summary by rule)."""
    day, frame = candidates(warehouse, as_of)
    result = screen(frame, rules)
    columns = OUTPUT_COLUMNS + [c for c in sorted(rules.factors) if c not in OUTPUT_COLUMNS]
    out = result.select(columns).with_columns(pl.lit(day).alias("as_of"))
    return day, out, screen_summary(result, rules)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("screen", help="which names pass a universe screen, and why others fail")
    p.add_argument("--as-of", dest="as_of", help="screen date D (default: day after last price)")
    p.add_argument("--rules", help="screen YAML (default QUANT_PIPELINE_SCREEN or the shipped one)")
    p.add_argument("--all", action="store_true", help="list failing names with their reason too")
    p.add_argument("--csv", action="store_true", help="print every candidate as CSV")
    p.add_argument("--warehouse")


def run(args: argparse.Namespace, warehouse: Warehouse) -> int:
    """``quant-pipeline screen``: the summary by rule, then the names (read-only)."""
    path = Path(args.rules) if args.rules else rules_file()
    rules = load_rules(path)
    as_of = date.fromisoformat(args.as_of) if args.as_of else None
    day, result, summary = run_screen(warehouse, rules, as_of)
    if args.csv:
        print(result.write_csv(), end="")
        return 0
    print(f"Screen {path.name} as of {day}: {int(result['passed'].sum())} of {result.height} pass")
    with pl.Config(tbl_rows=500, tbl_cols=20, tbl_width_chars=200, fmt_str_lengths=40):
        print(summary)
        shown = result if args.all else result.filter(pl.col("passed"))
        print(shown.drop("as_of"))
    return 0

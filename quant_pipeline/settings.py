"""Settings from environment variables, read when asked for (never at import time).

| env var | meaning | default |
|---|---|---|
| QUANT_PIPELINE_WAREHOUSE | DuckDB file | warehouse/quant.duckdb |
| QUANT_PIPELINE_SOURCE | demo, yahoo or files | demo |
| QUANT_PIPELINE_DATA_DIR | directory read by the files source | (none) |
| QUANT_PIPELINE_UNIVERSE | ticker list / membership file for yahoo | shipped S&P 500 list |
| QUANT_PIPELINE_DEMO_TICKERS | number of demo tickers | 500 |
| QUANT_PIPELINE_DEMO_START | first demo date | 2010-01-01 |
| QUANT_PIPELINE_DEMO_SEED | demo seed | 42 |
| QUANT_PIPELINE_DEMO_END | last demo date (pin it for reproducible runs) | latest weekday |
| QUANT_PIPELINE_STRATEGIES | comma-separated strategy names to run | every shipped strategy |
| QUANT_PIPELINE_REPORTS_DIR | directory the HTML tear sheets are written to | reports |
| QUANT_PIPELINE_RISK_FREE_RATE | annual risk-free rate (Sharpe, Sortino, alpha, LEAN table) | 0 |
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

SOURCES = ("demo", "yahoo", "files")


class SettingsError(ValueError):
    """A setting has a value the pipeline cannot use."""


@dataclass(frozen=True)
class Settings:
    warehouse: Path = Path("warehouse/quant.duckdb")
    source: str = "demo"
    data_dir: Path | None = None
    universe: Path | None = None
    demo_tickers: int = 500
    demo_start: date = date(2010, 1, 1)
    demo_seed: int = 42
    demo_end: date | None = None
    strategies: tuple[str, ...] | None = None
    reports_dir: Path = Path("reports")
    risk_free_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise SettingsError(
                f"QUANT_PIPELINE_SOURCE={self.source!r} is not a source; use one of {SOURCES}"
            )
        if self.demo_tickers < 1:
            raise SettingsError(
                f"QUANT_PIPELINE_DEMO_TICKERS must be >= 1, got {self.demo_tickers}"
            )
        if self.demo_end is not None and self.demo_end <= self.demo_start:
            raise SettingsError(
                f"QUANT_PIPELINE_DEMO_END={self.demo_end} must be after "
                f"QUANT_PIPELINE_DEMO_START={self.demo_start}"
            )
        if not (math.isfinite(self.risk_free_rate) and -1.0 < self.risk_free_rate < 1.0):
            raise SettingsError(
                f"QUANT_PIPELINE_RISK_FREE_RATE={self.risk_free_rate} must be an annual rate "
                "as a fraction between -1 and 1 (e.g. 0.02 for 2%)"
            )
        if self.source == "files" and self.data_dir is None:
            raise SettingsError("QUANT_PIPELINE_SOURCE=files needs QUANT_PIPELINE_DATA_DIR")

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)


def _int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from exc


def _float(name: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not a number") from exc


def _date(name: str, raw: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not a date (YYYY-MM-DD)") from exc


def from_env(env: dict[str, str] | None = None) -> Settings:
    """Settings from ``env`` (default ``os.environ``); unset or empty variables keep defaults."""
    env = dict(os.environ if env is None else env)

    def get(key: str) -> str | None:
        value = env.get(f"QUANT_PIPELINE_{key}", "").strip()
        return value or None

    kwargs: dict[str, object] = {}
    if (v := get("WAREHOUSE")) is not None:
        kwargs["warehouse"] = Path(v)
    if (v := get("SOURCE")) is not None:
        kwargs["source"] = v.lower()
    if (v := get("DATA_DIR")) is not None:
        kwargs["data_dir"] = Path(v)
    if (v := get("UNIVERSE")) is not None:
        kwargs["universe"] = Path(v)
    if (v := get("DEMO_TICKERS")) is not None:
        kwargs["demo_tickers"] = _int("QUANT_PIPELINE_DEMO_TICKERS", v)
    if (v := get("DEMO_START")) is not None:
        kwargs["demo_start"] = _date("QUANT_PIPELINE_DEMO_START", v)
    if (v := get("DEMO_END")) is not None:
        kwargs["demo_end"] = _date("QUANT_PIPELINE_DEMO_END", v)
    if (v := get("DEMO_SEED")) is not None:
        kwargs["demo_seed"] = _int("QUANT_PIPELINE_DEMO_SEED", v)
    if (v := get("REPORTS_DIR")) is not None:
        kwargs["reports_dir"] = Path(v)
    if (v := get("RISK_FREE_RATE")) is not None:
        kwargs["risk_free_rate"] = _float("QUANT_PIPELINE_RISK_FREE_RATE", v)
    if (v := get("STRATEGIES")) is not None:
        kwargs["strategies"] = tuple(s.strip() for s in v.split(",") if s.strip())
    return Settings(**kwargs)


def outbox_dir(env: dict[str, str] | None = None) -> Path:
    """Where recommendation packets go: QUANT_PIPELINE_OUTBOX, default ``outbox/``."""
    value = (os.environ if env is None else env).get("QUANT_PIPELINE_OUTBOX", "").strip()
    return Path(value or "outbox")


def inbox_dir(env: dict[str, str] | None = None) -> Path:
    """Where holdings files are dropped: QUANT_PIPELINE_INBOX, default ``inbox/``."""
    value = (os.environ if env is None else env).get("QUANT_PIPELINE_INBOX", "").strip()
    return Path(value or "inbox")


def portfolios_file(env: dict[str, str] | None = None) -> Path:
    """The portfolios YAML: QUANT_PIPELINE_PORTFOLIOS, default ``portfolios.yaml``."""
    value = (os.environ if env is None else env).get("QUANT_PIPELINE_PORTFOLIOS", "").strip()
    return Path(value or "portfolios.yaml")

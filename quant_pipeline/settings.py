"""Settings: ONE typed model, read from ``QUANT_PIPELINE_<FIELD>`` env vars when asked for.

:class:`Settings` is the single definition: :func:`from_env` reads one env var per field
(``QUANT_PIPELINE_`` + the field name in capitals; ``dagster_home`` is Dagster's own
``DAGSTER_HOME``), the market resource's fields are optional
overrides validated by the same model (``defs/resources.py``), and the ``quant-pipeline run``
flags are generated from the fields that declare one (:func:`add_settings_arguments`). Nothing is
read at import time. :func:`settings_table` renders the env var / flag / meaning / default
table the README shows (a test keeps the README's copy equal to it).
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from quant_pipeline.core.config_errors import describe_validation_error, one_of

ENV_PREFIX = "QUANT_PIPELINE_"
SOURCES: tuple[str, ...] = ("demo", "yahoo", "files")


class SettingsError(ValueError):
    """A setting has a value the pipeline cannot use; the message names the env var / field."""


def _field(
    default: Any,
    description: str,
    flag: str | None = None,
    shown: str | None = None,
    resource: str | None = None,
    env: str | None = None,
):
    """A settings field: ``flag`` is its ``quant-pipeline run`` option, ``shown`` its default
    as the docs table prints it (when the default is None or computed elsewhere), ``resource``
    the Dagster resource with an optional override field of the same name, ``env`` its
    environment variable when it is not ``QUANT_PIPELINE_<FIELD>`` (one Dagster itself reads)."""
    extra: dict[str, Any] = {"flag": flag, "shown_default": shown, "resource": resource}
    if env is not None:
        extra["env"] = env
    return Field(default=default, description=description, json_schema_extra=extra)


class Settings(BaseModel):
    """Every pipeline setting; construct it with :func:`from_env` (env vars + overrides)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    warehouse: Path = _field(
        Path("warehouse/quant.duckdb"), "DuckDB file", "--warehouse", resource="warehouse.path"
    )
    source: one_of(SOURCES) = _field(  # type: ignore[valid-type]
        "demo",
        f"where market data comes from: {', '.join(SOURCES)}",
        "--source",
        resource="market",
    )
    data_dir: Path | None = _field(
        None, "directory read by the files source", "--data-dir", resource="market"
    )
    universe: Path | None = _field(
        None,
        "ticker list / membership file for the yahoo source",
        "--universe",
        "shipped S&P 500 list",
        resource="market",
    )
    demo_tickers: int = _field(
        500, "demo market size (tickers, >= 1)", "--tickers", resource="market"
    )
    demo_start: date = _field(
        date(2010, 1, 1), "demo market first date (YYYY-MM-DD)", "--start", resource="market"
    )
    demo_seed: int = _field(42, "demo market seed", "--seed", resource="market")
    demo_end: date | None = _field(
        None,
        "demo market last date (YYYY-MM-DD; pin it for reproducible runs)",
        "--end",
        "latest weekday",
        resource="market",
    )
    strategies: tuple[str, ...] | None = _field(
        None,
        "comma-separated strategy names to run",
        "--strategies",
        "every shipped strategy",
        resource="market",
    )
    incremental: bool = _field(
        True,
        "keep stored results whose inputs did not change (factor values and scores per "
        "rebalance date, each strategy's weights, backtest and tear sheet); false recomputes "
        "everything",
        resource="market",
    )
    stale_after_sessions: int = _field(
        3,
        "curated.prices is stale (a warning check) when this many NYSE sessions are missing",
        resource="market",
    )
    reports_dir: Path = _field(Path("reports"), "directory the HTML tear sheets are written to")
    risk_free_rate: float = _field(
        0.0,
        "annual risk-free rate as a fraction (0.02 = 2%) of Sharpe, Sortino, alpha and LEAN's "
        "statistics, shown in every tear sheet; backtest/metrics run config risk_free_rate "
        "overrides it",
        "--risk-free-rate",
    )
    common_window_tolerance_days: int = _field(
        365,
        "a strategy is in backtest.comparison_common_window when it starts at most this many "
        "days after the median strategy start (and ends at most this many before the median "
        "end); later ones get a row saying why; backtest/metrics run config "
        "common_window_tolerance_days overrides it",
        "--common-window-tolerance-days",
    )
    sweep_workers: int = _field(
        1,
        "processes the research/sweep step spreads its variants over (1 = the step's own "
        "process; the step alone writes the warehouse). More pays only with idle cores and "
        "hundreds of variants: starting a worker costs ~2 s of CPU",
    )
    page_workers: int = _field(
        2,
        "processes the backtest/tear_sheets step draws its pages on when it has at least 4 to "
        "draw (1 = the step's own process; never more than the CPUs). Starting one costs ~2 s "
        "of CPU, so on a machine whose cores are already busy (a parallel test run) 1 is faster",
    )
    outbox: Path = _field(Path("outbox"), "folder recommendation packets are written to")
    inbox: Path = _field(Path("inbox"), "folder the inbox sensor watches for holdings files")
    portfolios: Path = _field(Path("portfolios.yaml"), "the portfolios YAML")
    dagster_home: Path = _field(
        Path("dagster_home"),
        "the Dagster instance `quant-pipeline run` records its runs in: the UI's (`make ui` sets "
        "it), so its Runs page and sensors see CLI runs; created with the shipped dagster.yaml "
        "if missing",
        env="DAGSTER_HOME",
    )

    @field_validator("source", mode="before")
    @classmethod
    def _lower_source(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("strategies", mode="before")
    @classmethod
    def _split_strategies(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple):
            names = tuple(str(v).strip() for v in value if str(v).strip())
            return names or None
        return value

    @field_validator("demo_tickers", "sweep_workers", "page_workers")
    @classmethod
    def _positive_tickers(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"must be >= 1, got {value}")
        return value

    @field_validator("common_window_tolerance_days")
    @classmethod
    def _non_negative_days(cls, value: int) -> int:
        if value < 0:
            raise ValueError(f"must be a whole number of days >= 0, got {value}")
        return value

    @field_validator("risk_free_rate")
    @classmethod
    def _annual_fraction(cls, value: float) -> float:
        if not (math.isfinite(value) and -1.0 < value < 1.0):
            raise ValueError(
                f"must be an annual rate as a fraction between -1 and 1 (0.02 for 2%), got {value}"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.demo_end is not None and self.demo_end <= self.demo_start:
            raise ValueError(
                f"{env_var('demo_end')}={self.demo_end} must be after "
                f"{env_var('demo_start')}={self.demo_start}"
            )
        if self.source == "files" and self.data_dir is None:
            raise ValueError(f"{env_var('source')}=files needs {env_var('data_dir')}")
        return self

    def with_(self, **changes: object) -> Settings:
        """A copy with ``changes`` applied, validated again."""
        return _validated({**self.model_dump(), **changes}, {k: "override" for k in changes})


def resource_fields(resource: str) -> tuple[str, ...]:
    """The settings fields the named Dagster resource can override (``market``)."""
    return tuple(
        name
        for name, info in Settings.model_fields.items()
        if (info.json_schema_extra or {}).get("resource") == resource
    )


def env_var(field: str) -> str:
    """The environment variable of a settings field: ``QUANT_PIPELINE_`` + its name (or the
    variable the field declares, ``DAGSTER_HOME``)."""
    info = Settings.model_fields.get(field)
    declared = (info.json_schema_extra or {}).get("env") if info else None
    return str(declared) if declared else ENV_PREFIX + field.upper()


def _validated(values: Mapping[str, Any], origins: Mapping[str, str]) -> Settings:
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise SettingsError(
            describe_validation_error(exc, Settings, lambda key: _origin(key, origins))
        ) from None


def _origin(key: str, origins: Mapping[str, str]) -> str:
    """How an error names a field: its env var, or where the override came from."""
    where = origins.get(key, "env")
    if where == "env":
        return env_var(key)
    info = Settings.model_fields.get(key)
    flag = (info.json_schema_extra or {}).get("flag") if info else None
    if where == "command line" and flag:
        return f"{flag} ({env_var(key)})"
    return f"{where} {key} ({env_var(key)})"


def from_env(
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    origin: str = "override",
) -> Settings:
    """Settings from ``env`` (default ``os.environ``) with ``overrides`` on top.

    Unset or empty env vars keep defaults; overrides that are None keep the env value. One
    validation by :class:`Settings` covers both; errors name the env var (or ``origin`` and the
    field: ``resource config demo_end``, ``--end``) and the allowed values.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for name in Settings.model_fields:
        raw = env.get(env_var(name), "").strip()
        if raw:
            values[name], origins[name] = raw, "env"
    for name, value in (overrides or {}).items():
        if value is not None and value != "" and value != []:
            values[name], origins[name] = value, origin
    return _validated(values, origins)


def add_settings_arguments(parser: argparse.ArgumentParser, only: tuple[str, ...] = ()) -> None:
    """One option per settings field with a ``flag`` (or only those named in ``only``); the
    parsed values land under the field names, None when not given."""
    for name, info in Settings.model_fields.items():
        flag = (info.json_schema_extra or {}).get("flag")
        if flag is None and name not in only:
            continue
        if only and name not in only:
            continue
        kwargs: dict[str, Any] = {"dest": name, "default": None, "help": info.description}
        if flag is not None and name != "source":
            kwargs["metavar"] = flag.lstrip("-").replace("-", "_").upper()
        if name == "source":
            kwargs["choices"] = list(SOURCES)
        parser.add_argument(flag or f"--{name.replace('_', '-')}", **kwargs)


def cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings fields given on the command line (argparse dests are the field names)."""
    return {
        n: getattr(args, n) for n in Settings.model_fields if getattr(args, n, None) is not None
    }


def settings_table() -> str:
    """The env var / flag / meaning / default table of :class:`Settings` (Markdown)."""
    lines = [
        "| env var | CLI flag | resource field | meaning | default |",
        "|---|---|---|---|---|",
    ]
    for name, info in Settings.model_fields.items():
        extra = info.json_schema_extra or {}
        flag = f"`{extra['flag']}`" if extra.get("flag") else "—"
        where = str(extra.get("resource") or "")
        resource = f"`{where if '.' in where else f'{where}.{name}'}`" if where else "—"
        if extra.get("shown_default"):
            shown = str(extra["shown_default"])
        elif info.default is None:
            shown = "—"
        else:
            shown = f"`{info.default}`"
        lines.append(f"| `{env_var(name)}` | {flag} | {resource} | {info.description} | {shown} |")
    return "\n".join(lines)


def outbox_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where recommendation packets go: QUANT_PIPELINE_OUTBOX, default ``outbox/``."""
    return from_env(env).outbox


def inbox_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where holdings files are dropped: QUANT_PIPELINE_INBOX, default ``inbox/``."""
    return from_env(env).inbox


def portfolios_file(env: Mapping[str, str] | None = None) -> Path:
    """The portfolios YAML: QUANT_PIPELINE_PORTFOLIOS, default ``portfolios.yaml``."""
    return from_env(env).portfolios

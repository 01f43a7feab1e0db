"""Read ``portfolios.yaml`` from disk into ``core.accounts.portfolios.PortfoliosConfig``."""

from __future__ import annotations

from pathlib import Path

import yaml

from quant_pipeline.core.accounts.portfolios import (
    PortfoliosConfig,
    PortfoliosConfigError,
    PortfolioSpec,
    parse_portfolios,
)


def empty_portfolios() -> PortfoliosConfig:
    """No portfolios listed: every name gets the built-in defaults."""
    return PortfoliosConfig(defaults=PortfolioSpec(name="defaults"), portfolios={})


def load_portfolios(path: str | Path, required: bool = False) -> PortfoliosConfig:
    """Read ``portfolios.yaml``. A missing file gives no portfolios (or raises if ``required``);
    relative ``holdings`` paths are taken from the file's folder."""
    path = Path(path)
    if not path.exists():
        if required:
            raise PortfoliosConfigError(str(path), "", "does not exist")
        return empty_portfolios()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PortfoliosConfigError(str(path), "", f"cannot be read as YAML: {exc}") from exc
    return parse_portfolios(raw, str(path), base=path.resolve().parent).with_source(path)

"""Read the shipped themes (``quant_pipeline/themes/*.yaml``): ready-made factor strategies
(value, quality, momentum, low volatility, dividend, one per sector) that ``quant-pipeline
orders --theme`` scores on the latest ``factors.values`` rebalance, without a pipeline run of
their own."""

from __future__ import annotations

from pathlib import Path

from quant_pipeline.config.strategies import load_strategies
from quant_pipeline.core.strategies.spec import StrategyConfigError, StrategySpec

THEMES_DIR = Path(__file__).resolve().parents[1] / "themes"


def load_themes(directory: Path | None = None) -> dict[str, StrategySpec]:
    """Every theme file, keyed by name (each a strategy document of kind factor)."""
    themes = load_strategies(directory or THEMES_DIR)
    for name, spec in themes.items():
        if spec.kind != "factor":
            raise StrategyConfigError(
                str(spec.source), "kind", f"theme {name!r} must be of kind factor", ("factor",)
            )
    return themes


def load_theme(name: str, directory: Path | None = None) -> StrategySpec:
    """The named theme; an unknown name lists the shipped ones."""
    themes = load_themes(directory)
    if name not in themes:
        raise StrategyConfigError(
            str(directory or THEMES_DIR), "theme", f"no theme named {name!r}", sorted(themes)
        )
    return themes[name]

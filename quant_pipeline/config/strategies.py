"""Read strategy YAML files (the shipped ``quant_pipeline/strategies/`` or a user folder) into
:class:`~quant_pipeline.core.strategies.spec.StrategySpec` (the parsing itself is pure, in core)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml

from quant_pipeline.core.strategies.spec import (
    StrategyConfigError,
    StrategySpec,
    parse_strategy,
    validate_blend_sleeves,
    with_screen,
)

STRATEGIES_DIR = Path(__file__).resolve().parents[1] / "strategies"
SCREENS_DIR = Path(__file__).resolve().parents[1] / "screens"


def attach_screen(spec: StrategySpec, file: str) -> StrategySpec:
    """``spec`` with the rules of the screen its ``universe.screen`` names (a file
    ``quant_pipeline/screens/<name>.yaml``, the ScreenRules model); unchanged without one."""
    name = spec.universe.screen
    if name is None:
        return spec
    from quant_pipeline.app.screen import ScreenConfigError, load_rules

    path = SCREENS_DIR / f"{name}.yaml"
    if not path.exists():
        available = sorted(p.stem for p in SCREENS_DIR.glob("*.yaml"))
        raise StrategyConfigError(file, "universe.screen", f"no screen named {name!r}", available)
    try:
        rules = load_rules(path)
    except ScreenConfigError as exc:
        raise StrategyConfigError(file, "universe.screen", str(exc)) from None
    return with_screen(spec, rules, str(path))


def load_strategy(path: str | Path) -> StrategySpec:
    """Read and validate one strategy YAML file (errors name the file and the key path)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise StrategyConfigError(str(path), "<document>", f"is not valid YAML: {exc}") from exc
    except OSError as exc:
        raise StrategyConfigError(str(path), "<file>", f"cannot be read: {exc}") from exc
    return attach_screen(parse_strategy(raw, str(path), source=path), str(path))


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
    validate_blend_sleeves(specs)
    if names is not None:
        wanted = list(names)
        for name in wanted:
            if name not in specs:
                raise StrategyConfigError(
                    str(directory), "name", f"no strategy named {name!r}", sorted(specs)
                )
        specs = {n: specs[n] for n in wanted}
    return dict(sorted(specs.items()))

"""Read sweep files (``quant_pipeline/strategies/sweeps/*.yaml``) into parsed sweeps.

The parsing is pure (``core.research.sweeps.parse_sweep``); this module reads the sweep file and
the YAML document of the strategy it names.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from quant_pipeline.config.strategies import STRATEGIES_DIR
from quant_pipeline.core.research.sweeps import SweepConfigError, SweepSpec, parse_sweep

SWEEPS_DIR = STRATEGIES_DIR / "sweeps"


def load_sweep(path: str | Path, strategies_dir: Path = STRATEGIES_DIR) -> SweepSpec:
    """One sweep file, parsed against its base strategy's YAML file (errors name both)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, OSError) as exc:
        raise SweepConfigError(f"{path}: cannot be read as YAML: {exc}") from exc
    strategy = raw.get("strategy") if isinstance(raw, dict) else None
    base_path = strategies_dir / f"{strategy}.yaml"
    if not base_path.exists():
        raise SweepConfigError(f"{path}: strategy: {strategy!r} has no file {base_path}")
    return parse_sweep(raw, yaml.safe_load(base_path.read_text()), str(path))


def load_sweeps(directory: Path = SWEEPS_DIR) -> dict[str, SweepSpec]:
    """Every sweep file in ``directory``, by sweep name (sorted by file name)."""
    sweeps = {}
    for path in sorted(directory.glob("*.yaml")):
        sweep = load_sweep(path)
        if sweep.name in sweeps:
            raise SweepConfigError(f"{path}: name: {sweep.name!r} is also another sweep's name")
        sweeps[sweep.name] = sweep
    return sweeps

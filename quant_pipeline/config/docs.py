"""Documentation tables generated from the configuration models (README, docs/*.md).

``python -m quant_pipeline.config.docs`` rewrites every block between
``<!-- generated: NAME -->`` and ``<!-- end generated -->`` in the docs; a test fails when a
block differs from what the models say, so the docs cannot drift from the code.
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from quant_pipeline.config.orders import orders_options_table
from quant_pipeline.core.accounts import portfolios
from quant_pipeline.core.data.schema import SECTORS
from quant_pipeline.core.factors.values import FACTOR_NAMES
from quant_pipeline.core.strategies import spec
from quant_pipeline.settings import settings_table

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"(<!-- generated: (\w+) -->\n)(.*?)(<!-- end generated -->)", re.DOTALL)
NAMED_LISTS = {tuple(SECTORS): "GICS sector", tuple(FACTOR_NAMES): "factor name"}


def _constraints(metadata: list[Any]) -> str:
    rules = []
    flat: list[Any] = []
    for m in metadata:
        flat.extend(m.metadata if isinstance(m, FieldInfo) else [m])
    for m in flat:
        for kind, sign in ((at.Gt, ">"), (at.Ge, ">="), (at.Lt, "<"), (at.Le, "<=")):
            if isinstance(m, kind):
                bound = getattr(m, {">": "gt", ">=": "ge", "<": "lt", "<=": "le"}[sign])
                rules.append(f"{sign} {bound}")
        if isinstance(m, at.MinLen):
            rules.append(f"at least {m.min_length}")
    return f" ({', '.join(rules)})" if rules else ""


def type_name(annotation: Any, metadata: list[Any] | None = None) -> str:
    """A reader's name for a field type: ``number (> 0)``, ``list of GICS sector``, ..."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return type_name(args[0], [*args[1:], *(metadata or [])])
    extra = _constraints(metadata or [])
    if origin in (Union, types.UnionType):
        named = [type_name(a, metadata) for a in args if a is not type(None)]
        return " or ".join(named) + (" or null" if type(None) in args else "")
    if origin is Literal:
        return NAMED_LISTS.get(args) or " \\| ".join(f"`{a}`" for a in args)
    if origin in (list, tuple):
        return f"list of {type_name(args[0])}{extra}"
    if origin is dict:
        return f"{{{type_name(args[0])}: {type_name(args[1])}}}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"`{annotation.__name__}`"
    simple = {float: "number", int: "whole number", bool: "true/false", str: "text", Any: "any"}
    return simple.get(annotation, getattr(annotation, "__name__", str(annotation))) + extra


def fields_table(model: type[BaseModel]) -> str:
    """Key / type / default / meaning of every field of ``model`` (Markdown)."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for name, info in model.model_fields.items():
        if info.is_required():
            default = "required"
        else:
            value = info.get_default(call_default_factory=True)
            default = "see below" if isinstance(value, BaseModel) else f"`{value!r}`"
        kind = type_name(info.annotation, list(info.metadata))
        lines.append(f"| `{name}` | {kind} | {default} | {info.description or ''} |")
    return "\n".join(lines)


def models_tables(models: list[type[BaseModel]]) -> str:
    """One titled table per model, with its docstring's first line."""
    parts = []
    for model in models:
        doc = (model.__doc__ or "").strip().splitlines()[0]
        parts.append(f"**`{model.__name__}`** — {doc}\n\n{fields_table(model)}")
    return "\n\n".join(parts)


STRATEGY_MODELS = [
    spec.FactorDocument,
    spec.UniverseSection,
    spec.ScreenBounds,
    spec.ScoringSection,
    spec.FactorGroupSection,
    spec.FactorEntry,
    spec.PortfolioRules,
    spec.CostRules,
    spec.TradingRules,
    spec.StaggeredDocument,
    spec.StaggeredRules,
    spec.SignalDocument,
    spec.SignalSection,
    spec.BlendDocument,
    spec.BlendSection,
]

GENERATED: dict[str, Callable[[], str]] = {
    "settings": settings_table,
    "orders_options": orders_options_table,
    "portfolios": lambda: models_tables([portfolios.PortfolioSpec, portfolios.HealthLimits]),
    "strategy_fields": lambda: models_tables(STRATEGY_MODELS),
}
DOC_FILES = ("README.md", "docs/strategies.md", "docs/orders.md")


def render(text: str) -> str:
    """``text`` with every generated block replaced by what the models say now."""

    def block(m: re.Match[str]) -> str:
        return f"{m.group(1)}{GENERATED[m.group(2)]()}\n{m.group(4)}"

    return BLOCK.sub(block, text)


def main() -> int:
    for name in DOC_FILES:
        path = ROOT / name
        text = path.read_text(encoding="utf-8")
        path.write_text(render(text), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

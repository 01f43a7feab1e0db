"""Pydantic validation errors as people read them: key path, the rule broken, the allowed values.

Pure (pydantic only). The configuration models (settings, strategy files, ``portfolios.yaml``,
orders options) build on :class:`StrictSection` and :func:`one_of`; :func:`first_problem` turns a
``ValidationError`` into a :class:`FieldProblem` (``portfolio.top_n``, "must be a whole number
>= 1, got 0", allowed values for enums and unknown keys) that each loader prefixes with its file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator
from pydantic_core import PydanticCustomError


@dataclass(frozen=True)
class FieldProblem:
    """One broken rule: where (dotted key path, ``[i]`` for list items), what, allowed values."""

    path: str
    problem: str
    allowed: tuple[Any, ...] | None = None

    def message(self, prefix: str = "") -> str:
        where = ": ".join(p for p in (prefix, self.path) if p)
        text = f"{where}: {self.problem}" if where else self.problem
        if self.allowed is not None:
            text += f"; allowed: {list(self.allowed)}"
        return text


def problem(at: str, message: str, allowed: Iterable[Any] | None = None) -> PydanticCustomError:
    """An error for a validator to raise: ``at`` is the key path below the model ('' = itself)."""
    ctx: dict[str, Any] = {"message": message, "at": at}
    if allowed is not None:
        ctx["allowed"] = tuple(allowed)
    return PydanticCustomError("config_problem", "{message}", ctx)


class StrictSection(BaseModel):
    """A configuration mapping: frozen, and an unknown key names itself and the allowed keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise problem("", f"must be a mapping, got {type(data).__name__} {data!r}")
        allowed = tuple(cls.model_fields)
        for key in data:
            if key not in allowed:
                raise problem(str(key), "unknown field", allowed)
        return dict(data)


def one_of(values: Iterable[str]) -> Any:
    """A string type limited to ``values`` whose error lists them (in this order)."""
    allowed = tuple(values)

    def check(value: Any) -> Any:
        if value not in allowed:
            raise problem("", f"unknown value {value!r}", allowed)
        return value

    return Annotated[Literal[allowed], BeforeValidator(check)]  # type: ignore[valid-type]


def _path(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _sentence(error: Mapping[str, Any]) -> str:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "missing":
        return "is required"
    if kind.startswith("bool"):
        return f"must be true or false, got {value!r}"
    if kind.startswith("int"):
        return f"must be a whole number, got {value!r}"
    if kind.startswith("float") or kind in ("finite_number",):
        return f"must be a number, got {value!r}"
    if kind.startswith("string") or kind == "str_type":
        return f"must be text, got {value!r}"
    if kind in ("date_type", "date_parsing", "date_from_datetime_parsing"):
        return f"must be a date (YYYY-MM-DD), got {value!r}"
    if kind in ("dict_type", "model_type", "mapping_type"):
        return f"must be a mapping, got {value!r}"
    if kind in ("list_type", "tuple_type"):
        return f"must be a list, got {value!r}"
    if kind == "greater_than":
        return (
            "must be positive" if ctx["gt"] == 0 else f"must be > {ctx['gt']}"
        ) + f", got {value!r}"
    if kind == "greater_than_equal":
        rule = "must not be negative" if ctx["ge"] == 0 else f"must be >= {ctx['ge']}"
        return f"{rule}, got {value!r}"
    if kind == "less_than":
        return f"must be < {ctx['lt']}, got {value!r}"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']}, got {value!r}"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "literal_error":
        return f"unknown value {value!r}; allowed: {ctx['expected']}"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def problems(exc: ValidationError, model: type[BaseModel] | None = None) -> list[FieldProblem]:
    """Every error of ``exc`` as a :class:`FieldProblem`, in pydantic's order."""
    out = []
    for error in exc.errors(include_url=False):
        ctx = error.get("ctx") or {}
        loc = list(error["loc"])
        if error["type"] == "config_problem":
            loc += [p for p in str(ctx.get("at", "")).split(".") if p]
            out.append(FieldProblem(_path(loc), str(ctx["message"]), ctx.get("allowed")))
            continue
        allowed = None
        if error["type"] == "extra_forbidden" and model is not None and len(loc) == 1:
            allowed = tuple(model.model_fields)
        out.append(FieldProblem(_path(loc), _sentence(error), allowed))
    return out


def first_problem(exc: ValidationError, model: type[BaseModel] | None = None) -> FieldProblem:
    """The first error of ``exc``: the one a person fixes first."""
    return problems(exc, model)[0]


def describe_validation_error(
    exc: ValidationError,
    model: type[BaseModel] | None = None,
    name_of: Callable[[str], str] | None = None,
) -> str:
    """Every error of ``exc`` on its own line; ``name_of`` renames a top-level key (an env var)."""
    lines = []
    for p in problems(exc, model):
        head, _, rest = p.path.partition(".")
        where = (name_of(head) if name_of and head else head) + (f".{rest}" if rest else "")
        lines.append(FieldProblem(where, p.problem, p.allowed).message())
    return "\n".join(lines)

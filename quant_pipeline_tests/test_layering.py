"""The layering rules of docs/design.md ("Layers"), checked on the source of every core module.

``quant_pipeline/core/`` is pure: no dagster, duckdb, network, subprocess or file I/O, and
nothing from the outer layers (app, defs, sources, storage, settings, definitions). Inside core
the subpackages form a chain, each importing only itself and the ones before it::

    data -> factors -> strategies -> backtest -> research -> reporting
    accounts may import data, strategies and backtest

The checker reads each module's syntax tree (imports anywhere in the file, including inside
functions and ``TYPE_CHECKING`` blocks, and calls that touch files), so it needs no import of
the module and cannot be fooled by a lazy import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "quant_pipeline"
CORE_DIR = PACKAGE_DIR / "core"

CHAIN = ("data", "factors", "strategies", "backtest", "research", "reporting")
ALLOWED: dict[str, frozenset[str]] = {
    **{pkg: frozenset(CHAIN[: i + 1]) for i, pkg in enumerate(CHAIN)},
    "accounts": frozenset({"accounts", "data", "strategies", "backtest"}),
}

# top-level module -> why core may not import it
FORBIDDEN_MODULES: dict[str, str] = {
    "dagster": "Dagster wiring belongs in defs/",
    "duckdb": "SQL belongs in storage/",
    "requests": "network access belongs in sources/",
    "yfinance": "network access belongs in sources/",
    "urllib": "network access belongs in sources/",
    "http": "network access belongs in sources/",
    "socket": "network access belongs in sources/",
    "subprocess": "running programs belongs in app/",
    "tempfile": "file I/O belongs in app/ or sources/",
    "shutil": "file I/O belongs in app/ or sources/",
    "importlib.metadata": "reading installed files belongs in app/",
    "importlib.resources": "reading package files belongs in app/ or sources/",
}
OUTER_LAYERS = ("app", "defs", "sources", "storage", "settings", "definitions")

# method names that read or write files (pathlib.Path and friends)
FILE_METHODS = frozenset(
    {
        "read_text", "write_text", "read_bytes", "write_bytes", "open", "touch", "mkdir",
        "rmdir", "unlink", "iterdir", "glob", "rglob", "exists", "is_file", "is_dir", "stat",
    }
)  # fmt: skip
OS_FILE_FUNCTIONS = frozenset(
    {
        "open", "fdopen", "replace", "rename", "remove", "unlink", "makedirs", "mkdir",
        "rmdir", "listdir", "scandir", "walk", "chmod", "stat",
    }
)  # fmt: skip
OS_PATH_FUNCTIONS = frozenset({"exists", "isfile", "isdir", "getsize", "getmtime"})
YAML_LOADERS = frozenset({"safe_load", "load", "full_load", "unsafe_load", "safe_load_all"})
# polars / numpy functions whose first argument is a file (an io.StringIO/BytesIO is fine)
FILE_READERS = frozenset(
    {
        "read_csv", "read_parquet", "read_json", "read_ndjson", "read_ipc", "read_excel",
        "read_avro", "read_delta", "scan_csv", "scan_parquet", "scan_ipc", "scan_ndjson",
        "load", "loadtxt", "genfromtxt", "fromfile", "save", "savetxt", "savez",
    }
)  # fmt: skip
FILE_WRITERS_ALWAYS = frozenset(
    {"write_parquet", "write_ipc", "write_excel", "write_avro", "write_delta", "sink_parquet",
     "sink_csv", "sink_ipc", "sink_ndjson"}
)  # fmt: skip
FILE_WRITERS_WITH_TARGET = frozenset({"write_csv", "write_json", "write_ndjson", "savefig"})
IN_MEMORY = frozenset({"StringIO", "BytesIO"})

# Modules allowed to break the rules while a move is under way (strict xfail: the marker must
# go when the move lands). Empty: strategy and portfolio YAML reading moved to config/.
PENDING_MOVE: dict[str, str] = {}


def _dotted(node: ast.expr) -> str:
    """``a.b.c`` for a Name/Attribute chain, '' for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _in_memory(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and _dotted(node.func).split(".")[-1] in IN_MEMORY


def _imported_modules(tree: ast.Module, module: str) -> list[tuple[int, str, list[str]]]:
    """``(line, absolute module name, imported names)`` of every import, relative ones resolved."""
    package = module.rsplit(".", 1)[0]
    found: list[tuple[int, str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            found.append((node.lineno, name, [alias.name for alias in node.names]))
    return found


def _import_problems(tree: ast.Module, module: str, subpackage: str | None) -> list[str]:
    problems = []
    for line, name, names in _imported_modules(tree, module):
        # ``from importlib import metadata`` imports the submodule importlib.metadata
        for candidate in (name, *(f"{name}.{n}" for n in names)):
            for forbidden, why in FORBIDDEN_MODULES.items():
                if candidate == forbidden or candidate.startswith(forbidden + "."):
                    problems.append(f"line {line}: imports {candidate} ({why})")
        parts = name.split(".")
        if parts[0] != "quant_pipeline" or len(parts) < 2:
            continue
        if parts[1] in OUTER_LAYERS:
            problems.append(f"line {line}: imports {name} (core may not import {parts[1]})")
        elif parts[1] == "core" and len(parts) > 2 and subpackage in ALLOWED:
            target = parts[2]
            if target in ALLOWED and target not in ALLOWED[subpackage]:
                allowed = ", ".join(p for p in (*CHAIN, "accounts") if p in ALLOWED[subpackage])
                problems.append(
                    f"line {line}: imports {name} (core.{subpackage} may import only {allowed})"
                )
    return problems


def _call_problem(node: ast.Call) -> str | None:
    name = _dotted(node.func)
    last = name.split(".")[-1] if name else getattr(node.func, "attr", "")
    first = node.args[0] if node.args else None
    if name == "open":
        return "calls open()"
    if name.startswith("os.path.") and last in OS_PATH_FUNCTIONS:
        return f"calls {name}()"
    if name.startswith("os.") and name.count(".") == 1 and last in OS_FILE_FUNCTIONS:
        return f"calls {name}()"
    if name.startswith("yaml.") and last in YAML_LOADERS and isinstance(first, ast.Call):
        return f"calls {name}() on {ast.unparse(first)} (YAML of a file)"
    if not isinstance(node.func, ast.Attribute):
        return None
    if last in FILE_METHODS and not name.startswith(("pl.", "np.", "re.")):
        return f"calls .{last}() (file I/O)"
    if last in FILE_READERS and name.startswith(("pl.", "polars.", "np.", "numpy.")):
        return None if first is not None and _in_memory(first) else f"calls {name}() (file I/O)"
    if last in FILE_WRITERS_ALWAYS:
        return f"calls .{last}() (file I/O)"
    if last in FILE_WRITERS_WITH_TARGET and (node.args or node.keywords):
        target = first if first is not None else node.keywords[0].value
        if not _in_memory(target) and not (isinstance(target, ast.Name) and last == "savefig"):
            return f"calls .{last}({ast.unparse(target)}) (writes a file)"
    return None


def violations(source: str, module: str, subpackage: str | None) -> list[str]:
    """Every layering rule the module's ``source`` breaks, one message per line and rule.

    ``module`` is the dotted name (to resolve relative imports); ``subpackage`` the core
    subpackage it lives in (``None`` for modules directly under core/).
    """
    tree = ast.parse(source)
    problems = _import_problems(tree, module, subpackage)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and (problem := _call_problem(node)):
            problems.append(f"line {node.lineno}: {problem}")
    return sorted(set(problems), key=lambda p: int(p.split(":")[0].removeprefix("line ")))


def _core_modules() -> list[Path]:
    return sorted(CORE_DIR.rglob("*.py"))


def _params() -> list:
    params = []
    for path in _core_modules():
        rel = path.relative_to(PACKAGE_DIR.parent).as_posix()
        marks = []
        if rel in PENDING_MOVE:
            marks = [pytest.mark.xfail(reason=PENDING_MOVE[rel], strict=True)]
        params.append(pytest.param(path, id=rel, marks=marks))
    return params


@pytest.mark.parametrize("path", _params())
def test_core_module_keeps_to_the_layering_rules(path: Path):
    rel = path.relative_to(PACKAGE_DIR.parent)
    module = ".".join(rel.with_suffix("").parts)
    parts = path.relative_to(CORE_DIR).parts
    subpackage = parts[0] if len(parts) > 1 else None
    assert subpackage is None or subpackage in ALLOWED, (
        f"{rel}: core subpackage {subpackage!r} has no place in the dependency rule; add it to "
        f"ALLOWED here and to docs/design.md (Layers)"
    )
    problems = violations(path.read_text(encoding="utf-8"), module, subpackage)
    assert not problems, f"{rel} breaks the core layering rules:\n  " + "\n  ".join(problems)


def test_every_core_subpackage_is_covered_and_the_checker_sees_modules():
    subpackages = {p.name for p in CORE_DIR.iterdir() if (p / "__init__.py").is_file()}
    assert subpackages == set(ALLOWED)
    assert len(_core_modules()) > 30


BAD_MODULE = """
import subprocess
from pathlib import Path

import dagster as dg
import polars as pl
import yaml

from quant_pipeline.core.backtest.metrics import sharpe_ratio
from quant_pipeline.storage.warehouse import Warehouse
from ..factors import values


def load(path: Path):
    import duckdb  # a lazy import is still an import

    text = path.read_text()
    with open(path) as handle:
        handle.read()
    frame = pl.read_csv(path)
    frame.write_parquet("out.parquet")
    return yaml.safe_load(path.open())
"""

GOOD_MODULE = """
import io

import polars as pl
import yaml

from quant_pipeline.core.data.schema import RAW_PRICES


def parse(text: str) -> pl.DataFrame:
    config = yaml.safe_load(text)  # a YAML string, not a file
    frame = pl.read_csv(io.StringIO(text))
    frame.write_csv()  # returns a string
    return frame
"""


def test_the_checker_flags_every_rule_a_synthetic_bad_module_breaks():
    problems = violations(BAD_MODULE, "quant_pipeline.core.factors.bad", "factors")
    text = "\n".join(problems)
    for expected in (
        "line 2: imports subprocess",
        "line 5: imports dagster",
        "line 9: imports quant_pipeline.core.backtest.metrics (core.factors may import only "
        "data, factors)",
        "line 10: imports quant_pipeline.storage.warehouse (core may not import storage)",
        "line 15: imports duckdb",
        "line 17: calls .read_text() (file I/O)",
        "line 18: calls open()",
        "line 20: calls pl.read_csv() (file I/O)",
        "line 21: calls .write_parquet() (file I/O)",
        "line 22: calls yaml.safe_load() on path.open() (YAML of a file)",
    ):
        assert expected in text, f"not flagged: {expected}\n{text}"
    # line 11, the relative import of the module's own package, is allowed
    assert not [p for p in problems if p.startswith("line 11:")]


def test_the_checker_accepts_pure_parsing_of_in_memory_text():
    assert violations(GOOD_MODULE, "quant_pipeline.core.factors.good", "factors") == []


def test_accounts_may_import_backtest_but_not_reporting():
    source = (
        "from quant_pipeline.core.backtest.costs import CommissionModel\n"
        "from quant_pipeline.core.reporting.tearsheet import render\n"
    )
    assert violations(source, "quant_pipeline.core.accounts.x", "accounts") == [
        "line 2: imports quant_pipeline.core.reporting.tearsheet (core.accounts may import "
        "only data, strategies, backtest, accounts)"
    ]

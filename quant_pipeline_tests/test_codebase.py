"""Rules about the code itself, checked over the source files of the package."""

import ast
from pathlib import Path

import quant_pipeline

PACKAGE = Path(quant_pipeline.__file__).resolve().parent
MAX_FUNCTION_LINES = 80


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int, int]]:
    """(qualified name, first line, length in lines) of every function or method in ``source``
    longer than ``limit`` lines; the length runs from the ``def`` line (decorators excluded) to
    the function's last line, docstring included."""
    found: list[tuple[str, int, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                length = child.end_lineno - child.lineno + 1  # type: ignore[operator]
                if length > limit:
                    found.append((name, child.lineno, length))
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return found


def test_long_functions_counts_def_to_last_line_and_finds_nested_and_methods():
    body = "\n".join(f"    x{i} = {i}" for i in range(79))  # def line + 79 = 80 lines: allowed
    source = (
        f"def ok():\n{body}\n\n"
        f"def too_long():\n{body}\n    return 1\n\n"
        f"class C:\n    def method(self):\n    {body.replace(chr(10), chr(10) + '    ')}\n"
        f"        return 2\n\n"
        f"def outer():\n    def inner():\n    {body.replace(chr(10), chr(10) + '    ')}\n"
        f"        return 3\n    return inner\n"
    )
    found = {name: (line, length) for name, line, length in long_functions(source)}
    assert set(found) == {"too_long", "C.method", "outer", "outer.inner"}
    assert found["too_long"] == (82, 81)
    assert found["C.method"][1] == 81
    assert found["outer.inner"][1] == 81
    assert found["outer"][1] == 83


def test_no_function_in_the_package_is_longer_than_80_lines():
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line} {name} ({length} lines)"
        for path in sorted(PACKAGE.rglob("*.py"))
        for name, line, length in long_functions(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, (
        f"{len(offenders)} function(s) longer than {MAX_FUNCTION_LINES} lines (split them into "
        "named steps):\n" + "\n".join(offenders)
    )

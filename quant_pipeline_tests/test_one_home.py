"""One home per computation (issue 11): each of these is defined once in ``quant_pipeline/``.

An AST scan of every module of the package. It fails when a second copy appears of

* a function named like a metric that lives in ``core/backtest/metrics.py`` (probabilistic
  Sharpe ratio, Sharpe ratio, monthly returns, rolling Sharpe, max drawdown), or a rolling
  ``mean / std`` ratio (a rolling Sharpe written inline);
* the row-order check (a function named ``*sorted_by*`` outside ``core/data/frames.py``);
* the required-columns check: a comprehension or set difference that looks for names missing
  from ``<frame>.columns`` / ``collect_schema().names()`` outside ``core/data/frames.py``
  (call ``frames.require_columns`` / ``frames.missing_columns`` instead);
* the number 252 (trading days per year) outside ``core/data/calendar.py``;
* a literal list of price columns (three or more of open, high, low, close, adj_close, volume)
  outside ``core/data/schema.py``.

Dagster assets (a decorated function whose decorator mentions ``asset``) are wiring, not
computation: the ``backtest/monthly_returns`` asset may keep its name. The checker itself is
tested on small synthetic sources, so it is known to catch each kind of copy.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "quant_pipeline"

METRICS = "core/backtest/metrics.py"
FRAMES = "core/data/frames.py"
CALENDAR = "core/data/calendar.py"
SCHEMA = "core/data/schema.py"

# computation -> (its home, a pattern of function names that compute it, a name the home defines)
NAMED_HOMES: dict[str, tuple[str, str, str]] = {
    "probabilistic Sharpe ratio": (
        METRICS,
        r"probabilistic_sharpe|(^|_)psr($|_)",
        "probabilistic_sharpe_ratio",
    ),
    "Sharpe ratio": (METRICS, r"^_?(annuali[sz]ed_)?sharpe(_ratio)?$", "sharpe_ratio"),
    "monthly returns": (METRICS, r"^_?monthly_returns?$", "monthly_returns"),
    "rolling Sharpe": (METRICS, r"^_?rolling_sharpe(_ratio)?$", "rolling_sharpe"),
    "max drawdown": (METRICS, r"^_?max(imum)?_drawdown$", "max_drawdown"),
    "sort-order check": (FRAMES, r"sorted_by", "is_sorted_by"),
    "required-columns check": (FRAMES, r"^_?(require|missing)(_columns)?$", "require_columns"),
}
PRICE_FIELDS = frozenset({"open", "high", "low", "close", "adj_close", "volume"})
TRADING_DAYS = 252


def _is_asset(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any("asset" in ast.unparse(d) for d in node.decorator_list)


def _names_columns(node: ast.AST) -> bool:
    """``<x>.columns`` or ``<x>.collect_schema().names()``: the column names of a frame."""
    if isinstance(node, ast.Attribute) and node.attr == "columns":
        return True
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "names"
        and isinstance(node.func.value, ast.Call)
        and isinstance(node.func.value.func, ast.Attribute)
        and node.func.value.func.attr == "collect_schema"
    )


def _missing_columns_search(node: ast.AST) -> bool:
    """``[c for c in cols if c not in frame.columns]`` or ``set(cols) - set(frame.columns)``."""
    if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp):
        for generator in node.generators:
            for test in generator.ifs:
                for compare in ast.walk(test):
                    if isinstance(compare, ast.Compare) and any(
                        isinstance(op, ast.NotIn) and _names_columns(right)
                        for op, right in zip(compare.ops, compare.comparators, strict=True)
                    ):
                        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub):
        right = node.right
        if isinstance(right, ast.Call) and right.args and _names_columns(right.args[0]):
            return True
        return _names_columns(right)
    return False


def _calls(node: ast.AST, method: str) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == method
        for n in ast.walk(node)
    )


def violations(source: str, path: str) -> list[str]:
    """Every second copy in ``source``, the module at ``path`` (relative to the package)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        line = f"{path}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not _is_asset(node):
            for what, (home, pattern, _) in NAMED_HOMES.items():
                if path != home and re.search(pattern, node.name):
                    found.append(f"{line}: function {node.name!r} computes the {what} ({home})")
        if path != FRAMES and _missing_columns_search(node):
            found.append(f"{line}: a required-columns check; use {FRAMES}::require_columns")
        if (
            path != METRICS
            and isinstance(node, ast.BinOp)
            and isinstance(node.op, ast.Div)
            and _calls(node.left, "rolling_mean")
            and _calls(node.right, "rolling_std")
        ):
            found.append(f"{line}: a rolling mean / std (a rolling Sharpe); use {METRICS}")
        if (
            path != CALENDAR
            and isinstance(node, ast.Constant)
            and not isinstance(node.value, bool)
            and isinstance(node.value, int | float)
            and node.value == TRADING_DAYS
        ):
            found.append(f"{line}: literal 252; use {CALENDAR}::TRADING_DAYS_PER_YEAR")
        if path != SCHEMA and isinstance(node, ast.List | ast.Tuple | ast.Set):
            fields = {
                e.value
                for e in node.elts
                if isinstance(e, ast.Constant) and e.value in PRICE_FIELDS
            }
            if len(fields) >= 3:
                found.append(f"{line}: a price column list {sorted(fields)}; use {SCHEMA}")
    return found


def _modules() -> list[tuple[str, str]]:
    return [
        (p.relative_to(PACKAGE).as_posix(), p.read_text(encoding="utf-8"))
        for p in sorted(PACKAGE.rglob("*.py"))
    ]


def test_every_computation_of_issue_11_has_one_home_in_the_package():
    modules = _modules()
    assert len(modules) > 50, f"expected the whole package under {PACKAGE}"
    found = [v for path, source in modules for v in violations(source, path)]
    assert found == [], "second copies:\n" + "\n".join(found)


def test_each_home_defines_its_computation():
    sources = dict(_modules())
    defined = {
        path: {n.name for n in ast.walk(ast.parse(sources[path])) if isinstance(n, ast.FunctionDef)}
        for path in {home for home, _, _ in NAMED_HOMES.values()}
    }
    for what, (home, pattern, name) in NAMED_HOMES.items():
        assert name in defined[home], f"{home} should define {name} (the {what})"
        assert re.search(pattern, name), f"the pattern for the {what} must match {name}"
    assert re.search(r"^TRADING_DAYS_PER_YEAR = 252$", sources[CALENDAR], re.MULTILINE)
    assert re.search(r"^PRICE_COLUMNS: tuple\[str, \.\.\.\] = ", sources[SCHEMA], re.MULTILINE)


# ---- the checker catches each kind of copy --------------------------------------------------

COPIES = {
    "a second PSR": "def probabilistic_sharpe_ratio(r):\n    return 0.5\n",
    "a private PSR": "def _psr(returns, sr_benchmark=0.0):\n    return 0.5\n",
    "a second Sharpe": "def sharpe(r):\n    return r.mean() / r.std()\n",
    "a second monthly returns": "def monthly_returns(daily):\n    return daily\n",
    "a second rolling Sharpe": "def rolling_sharpe(daily, window):\n    return daily\n",
    "an inline rolling Sharpe": "x = r.rolling_mean(5) / r.rolling_std(5) * scale\n",
    "a second drawdown": "def _max_drawdown(r):\n    return r.min()\n",
    "a second sort check": "def _sorted_by(frame, keys):\n    return True\n",
    "a required-columns list": (
        "def _check_inputs(frame, cols, what):\n"
        "    missing = [c for c in cols if c not in frame.columns]\n"
        "    if missing:\n"
        "        raise ValueError(f'{what}: missing {missing}')\n"
    ),
    "a required-columns wrapper": (
        "def _require(frame, what, cols):\n    require_columns(frame, cols, what, MyError)\n"
    ),
    "a required-columns set": "missing = sorted({'a', 'b'} - set(scores.columns))\n",
    "a lazy required-columns": (
        "missing = [c for c in cols if c not in lf.collect_schema().names()]\n"
    ),
    "a literal 252": "PERIODS_PER_YEAR = 252\n",
    "a literal 252 in a call": "scale = math.sqrt(252.0)\n",
    "a price column list": 'COLS = ("ticker", "date", "open", "high", "low", "close")\n',
    "a price column set": '_FLOATS = {"close", "adj_close", "volume", "value"}\n',
}


@pytest.mark.parametrize("source", COPIES.values(), ids=COPIES.keys())
def test_the_checker_rejects_a_copy_outside_its_home(source):
    assert len(violations(source, "core/research/new_module.py")) == 1


@pytest.mark.parametrize(
    "source, home",
    [
        (COPIES["a second PSR"], METRICS),
        (COPIES["a second sort check"], FRAMES),
        (COPIES["a required-columns list"], FRAMES),
        (COPIES["a literal 252"], CALENDAR),
        (COPIES["a price column list"], SCHEMA),
    ],
)
def test_the_checker_accepts_the_computation_in_its_home(source, home):
    assert violations(source, home) == []


def test_the_checker_lets_wiring_and_other_code_be():
    fine = (
        "@dg.asset(key=['backtest', 'monthly_returns'])\n"
        "def monthly_returns(warehouse):\n"
        "    return None\n"
        "def rolling_sharpe_png(daily):\n"
        "    return rolling_sharpe(daily)\n"
        "extra = [c for c in frame.columns if c not in schema]\n"
        "if 'date' not in frame.columns:\n"
        "    pass\n"
        "window = 253\n"
        "keep = ('ticker', 'date', 'close')\n"
    )
    assert violations(fine, "core/reporting/new_module.py") == []

"""The allocator option the package sets for polars (``quant_pipeline/__init__.py``)."""

import os
import subprocess
import sys

from quant_pipeline import ALLOCATOR_CONF

PRINT = "import quant_pipeline, os; print(os.environ['_RJEM_MALLOC_CONF'])"


def _child(env: dict) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PRINT], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_importing_the_package_sets_the_allocator_option_when_unset():
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    assert _child(env) == ALLOCATOR_CONF == "dirty_decay_ms:200,muzzy_decay_ms:200"


def test_a_users_allocator_option_is_kept():
    env = {**os.environ, "_RJEM_MALLOC_CONF": "dirty_decay_ms:5000"}
    assert _child(env) == "dirty_decay_ms:5000"


def test_the_package_itself_imports_no_polars():
    """The option works only if polars loads after it: the package itself imports no polars."""
    code = "import sys, quant_pipeline; print('polars' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"

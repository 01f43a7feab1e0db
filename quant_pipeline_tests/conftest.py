"""Session-wide guards: a pinned demo market, a private DAGSTER_HOME, an untouched project tree.

* ``QUANT_PIPELINE_DEMO_END`` is set to :data:`quant_pipeline_tests.pins.DEMO_END` for the whole
  session, so a demo market built from the settings is the same on every day the suite runs.
* ``QUANT_PIPELINE_PAGE_WORKERS`` is 1: the suite already keeps every core busy, and two
  spawned drawing processes per full chain would only add their start-up (~2 s of CPU each);
  ``defs/test_wiring.py`` draws the shared chain's pages on two processes and compares.
* ``DAGSTER_HOME`` points at a temporary folder (the Makefile exports the project's
  ``dagster_home/``), so no run history lands in the project.
* The project's ``dagster_home/`` and ``warehouse/`` folders are listed (name, size, mtime) at
  session start and again at the end; any difference fails the session, naming the files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from quant_pipeline_tests.pins import DEMO_END_ISO

PROJECT_ROOT = Path(__file__).resolve().parents[1]
GUARDED_DIRS = ("dagster_home", "warehouse")


def tree_listing(root: Path, folders: tuple[str, ...] = GUARDED_DIRS) -> dict[str, tuple]:
    """``{relative path: (size, mtime_ns)}`` of every file under ``root/<folder>``."""
    listing: dict[str, tuple] = {}
    for folder in folders:
        base = root / folder
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if path.is_file():
                stat = path.stat()
                listing[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return listing


def listing_changes(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    """Human-readable differences between two :func:`tree_listing` results."""
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    return (
        [f"added {k}" for k in added]
        + [f"removed {k}" for k in removed]
        + [f"changed {k}" for k in changed]
    )


@pytest.fixture(scope="session", autouse=True)
def _pinned_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    before = tree_listing(PROJECT_ROOT)
    home = tmp_path_factory.mktemp("dagster_home")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("QUANT_PIPELINE_DEMO_END", DEMO_END_ISO)
        env.setenv("DAGSTER_HOME", str(home))
        env.setenv("QUANT_PIPELINE_PAGE_WORKERS", "1")
        yield
        assert os.environ["QUANT_PIPELINE_DEMO_END"] == DEMO_END_ISO, (
            "a test left QUANT_PIPELINE_DEMO_END changed; use monkeypatch.setenv"
        )
    changes = listing_changes(before, tree_listing(PROJECT_ROOT))
    assert not changes, (
        f"the test session wrote to the project's {' / '.join(GUARDED_DIRS)} folders "
        f"(tests must use tmp_path): {'; '.join(changes)}"
    )

"""Fixtures for source tests: the shared data folder and an offline yfinance."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _shared_candidates() -> list[Path]:
    env = os.environ.get("QUANT_PIPELINE_SHARED_DIR")
    # CI keeps `shared/` beside the repository; a git worktree under <root>/wt/<name> has it
    # two levels up.
    found = [REPO_ROOT.parent / "shared", REPO_ROOT.parent.parent / "shared"]
    return ([Path(env)] if env else []) + found


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared data folder (`../shared` from the repository root); skip when absent."""
    for candidate in _shared_candidates():
        if candidate.is_dir():
            return candidate
    pytest.skip(
        f"shared data folder not found (looked in {[str(c) for c in _shared_candidates()]})"
    )


@pytest.fixture(scope="session")
def sp500_dir(shared_dir: Path) -> Path:
    path = shared_dir / "data" / "sp500"
    if not (path / "prices.csv.gz").is_file():
        pytest.skip(f"S&P 500 dataset absent from {path}")
    return path


@pytest.fixture(scope="session")
def yahoo_fixtures(shared_dir: Path) -> Path:
    path = shared_dir / "fixtures" / "yahoo"
    if not (path / "node-yahoo-finance2").is_dir():
        pytest.skip(f"recorded Yahoo responses absent from {path}")
    return path


@pytest.fixture(scope="session")
def _yfinance_offline_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    import yfinance as yf

    # Keep yfinance's timezone / cookie caches out of the user's home directory.
    yf.set_tz_cache_location(str(tmp_path_factory.mktemp("yfinance-cache")))


@pytest.fixture
def replay(yahoo_fixtures: Path, _yfinance_offline_cache: None):
    """A fresh replaying session; yfinance's in-memory response cache is cleared around it."""
    from yfinance.data import YfData

    from quant_pipeline_tests.sources.yahoo_replay import ReplaySession

    YfData.cache_get.cache_clear()
    yield ReplaySession(yahoo_fixtures)
    YfData.cache_get.cache_clear()

"""Fixtures for the Dagster wiring tests: the shared data folder and the Yahoo replay session.

The same fixtures as the source tests (one definition, in ``sources/conftest.py``).
"""

import pytest

from quant_pipeline_tests.defs.chain import build_chain
from quant_pipeline_tests.sources.conftest import (  # noqa: F401 - pytest fixtures
    _yfinance_offline_cache,
    replay,
    shared_dir,
    sp500_dir,
    yahoo_fixtures,
)


@pytest.fixture(scope="session")
def demo_chain(tmp_path_factory):
    """The session's shared small demo chain (quant_pipeline_tests/defs/chain.py)."""
    return build_chain(tmp_path_factory)

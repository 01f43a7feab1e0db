"""Fixtures for the Dagster wiring tests: the shared data folder and the Yahoo replay session.

The same fixtures as the source tests (one definition, in ``sources/conftest.py``).
"""

from quant_pipeline_tests.sources.conftest import (  # noqa: F401 - pytest fixtures
    _yfinance_offline_cache,
    replay,
    shared_dir,
    sp500_dir,
    yahoo_fixtures,
)

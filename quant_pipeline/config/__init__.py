"""Configuration files and options read on the application side.

The typed models live beside what they configure and are pure (``core.strategies.spec``,
``core.accounts.portfolios``, ``quant_pipeline.settings``); this package reads the files (YAML
from disk) and holds the orders-options model shared by the Dagster run config and the CLI.
"""

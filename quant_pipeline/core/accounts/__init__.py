"""Accounts: what a person holds and should trade — holdings parsing, portfolio specs, share
orders from target weights, live-portfolio health, and the recommendation packet's content.
Depends on ``core.data``, ``core.strategies`` and ``core.backtest`` (costs)."""

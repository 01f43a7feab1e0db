"""Research: alphalens-style factor diagnostics (IC, quantile returns, turnover) and "is it luck?"
baselines (random portfolios, perfect foresight, probabilistic Sharpe), assembled into the
research tables. Depends on ``core.data`` through ``core.backtest``."""

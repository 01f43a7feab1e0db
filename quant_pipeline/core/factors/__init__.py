"""Factors: point-in-time factor values per (rebalance date, ticker), the vintage-aware variant,
cross-sectional transforms (zscore, rank, winsorize) and the strategy scores built from them.
Depends on ``core.data`` only."""

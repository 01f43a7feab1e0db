"""Backtests: the share-based simulation (the engine every table comes from), the vectorised
reference engine the tests use as an oracle, trading costs, benchmark returns, blends, metrics,
the strategy comparison, bias labels and the lookahead audit.
Depends on ``core.data``, ``core.factors`` and ``core.strategies``."""

"""Strategies: the validated strategy spec, and how each kind turns scores or signals into target
weights (factor top-N with constraints, technical signals, staggered holdings).
Depends on ``core.data`` and ``core.factors``."""

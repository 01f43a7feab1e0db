"""The pure core: polars in, polars out. No dagster, duckdb, network or file I/O here.

Subpackages by domain, each depending only on those listed before it (``docs/design.md``):
``data`` (schemas, calendar, curation, validation) → ``factors`` (point-in-time values,
cross-sectional transforms, scores) → ``strategies`` (specs and target weights) → ``backtest``
(share simulation, costs, benchmarks, metrics, labels, audit) → ``research`` (diagnostics, luck)
→ ``reporting`` (charts, tear sheets); ``accounts`` (holdings, orders, health, packets) builds on
``strategies`` and ``backtest``.
"""

"""Reporting: charts as PNG bytes (backtest and research) and the self-contained HTML tear sheet.
Reads results computed elsewhere; computes no metric of its own (``core.backtest.metrics`` does)."""

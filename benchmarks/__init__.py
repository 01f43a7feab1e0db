"""Performance harness for quant_pipeline (not part of the test suite): ``python -m benchmarks.run``."""

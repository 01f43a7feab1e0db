# quant_pipeline — one command each: `make demo`, `make test`, `make ui`.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/dagster_home

.PHONY: demo test ui install install-dev lint bench clean-warehouse

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## demo: install, materialize every asset on the offline demo market, print the comparison
demo: install
	$(BIN)/quant-pipeline run

## test: install the dev extras and run the whole test suite (CI runs this)
test: install-dev
	$(BIN)/python -m pytest -n auto --dist loadfile

## ui: the Dagster UI on http://127.0.0.1:3000 with DAGSTER_HOME=dagster_home/
ui: install
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

lint: install-dev
	$(BIN)/ruff check quant_pipeline quant_pipeline_tests benchmarks
	$(BIN)/ruff format --check quant_pipeline quant_pipeline_tests benchmarks

## bench: the performance harness (not part of the tests)
bench: install
	$(BIN)/python -m benchmarks.run

clean-warehouse:
	rm -f warehouse/quant.duckdb warehouse/quant.duckdb.wal

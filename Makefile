# The two commands a newcomer runs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-fast lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install when the dependency list changes.
$(VENV)/.ml-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[ml,data,server]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.ml-installed

## demo: set up .venv, install, run the end-to-end quickstart on the embedded default (~/.conveyor)
demo: $(VENV)/.ml-installed
	$(BIN)/conveyor quickstart

## test: set up .venv with the dev extras and run the whole suite (unit, contract, integration, e2e)
test: $(VENV)/.dev-installed
	$(BIN)/python -m pytest

## test-fast: everything except the slow scenario runs
test-fast: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -m "not slow"

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

## bench: the side-by-side benchmarks against MLflow, DVC, Kedro, Prefect and Evidently, in their own venv (never part of `make test`)
.venv-bench/.installed: pyproject.toml
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/pip install --quiet -e '.[bench]'
	touch $@

bench: .venv-bench/.installed
	for script in tracking_ingest search_runs server_ingest registry_roundtrip data_add pipeline_overhead \
	              pipeline_sweep drift serving; do \
	    .venv-bench/bin/python benchmarks/$$script.py || exit 1; done

clean:
	rm -rf $(VENV) .venv-bench .pytest_cache build dist

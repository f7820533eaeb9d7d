# One way to run things, locally and in CI. Each target creates .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: serve test check lint typecheck unit bench lowest clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[bench]"
	touch $@

## serve: install and run the gateway on http://127.0.0.1:8000 with the simulator and the demo account
serve: $(VENV)/.installed
	$(BIN)/tickcast serve --demo $(ARGS)

## test: install test dependencies, then lint, type-check and run the whole suite
test: $(VENV)/.installed-test lint typecheck
	$(BIN)/pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/ruff format --check src tests $(wildcard bench)

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

## unit: the fast pure tests only
unit: $(VENV)/.installed-test
	$(BIN)/pytest tests/unit tests/architecture -q

## bench: the fan-out benchmark against its peers (see docs/performance.md)
bench: $(VENV)/.installed-bench
	$(BIN)/python bench/run.py $(ARGS)

## lowest: check every lower bound in pyproject.toml: install each at its bound in .venv-lowest,
## then lint, type-check and run the whole suite there (slow; not part of test or CI)
lowest:
	PYTHON=$(PYTHON) bash .ci/lowest

clean:
	rm -rf $(VENV) .venv-lowest .pytest_cache .mypy_cache .ruff_cache

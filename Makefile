# One way to run things, locally and in CI. Each target creates .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: serve test check lint typecheck unit bench lowest clean

# Each install step says what it does, and pip shows each package it fetches: the first
# run takes a minute or two, which must not look like a hang.
$(VENV)/.installed: pyproject.toml
	@echo "==> tickcast: creating the virtual environment $(VENV)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> tickcast: upgrading pip in $(VENV)"
	$(BIN)/pip install --quiet --upgrade pip
	@echo "==> tickcast: installing tickcast and its dependencies into $(VENV) (a minute or two the first time)"
	$(BIN)/pip install --progress-bar on -e .
	@echo "==> tickcast: installed"
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	@echo "==> tickcast: installing the test dependencies into $(VENV)"
	$(BIN)/pip install --progress-bar on -e ".[test]"
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed
	@echo "==> tickcast: installing the benchmark dependencies into $(VENV)"
	$(BIN)/pip install --progress-bar on -e ".[bench]"
	touch $@

## serve: install and run the gateway on http://127.0.0.1:8000 with the simulator and the demo account
serve: $(VENV)/.installed
	@echo "==> tickcast: starting the gateway (Ctrl+C stops it)"
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

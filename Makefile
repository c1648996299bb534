# cdclake: `make demo` runs the whole pipeline on the local stack; `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov pins packaging/boto3 below the project's: it lives in its own virtualenv.
TOOLS := .venv-tools
TOOLS_STAMP := $(TOOLS)/.installed
CHECKOV_VERSION := 3.3.30
TFLINT_VERSION := v0.64.0

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11" >&2; exit 3; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[lakehouse,dev]'
	touch $(STAMP)

$(TOOLS_STAMP):
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q checkov==$(CHECKOV_VERSION)
	-command -v tflint >/dev/null || go install github.com/terraform-linters/tflint@$(TFLINT_VERSION)
	touch $(TOOLS_STAMP)

tools: $(TOOLS_STAMP) ## install the Terraform checkers (checkov in .venv-tools, tflint with go install)

setup: $(STAMP) ## install the pipeline: Python packages, PostgreSQL (apt), JVM engines (Maven); idempotent
	$(BIN)/cdclake setup

airflow: $(STAMP) ## also install Apache Airflow into .venv-airflow (for `cdclake airflow up` and its tests)
	$(BIN)/cdclake setup --airflow

demo: setup ## run the whole pipeline on the embedded local stack
	$(BIN)/cdclake demo

test: airflow tools ## run unit and integration tests on the real local stack (the DAG tests need Airflow)
	$(BIN)/pytest -q

unit: $(STAMP) tools ## run the fast unit tests only (no stack)
	$(BIN)/pytest -q -m "not integration"

bench: setup ## run the benchmarks in bench/ against the local stack (long); report in bench/results/
	$(BIN)/cdclake up
	$(BIN)/python -m bench
	$(BIN)/python -m bench.stream

chaos: setup ## the broker loop: SIGKILL a random broker of a 3-node quorum every ~20 s for 3 min, then silver vs PostgreSQL (~6 min)
	$(BIN)/python -m bench.chaos

up: setup ## start the local stack
	$(BIN)/cdclake up

down: ## stop the local stack
	$(BIN)/cdclake down

clean: ## stop the stack and delete its state (.cdclake/)
	-$(BIN)/cdclake down --purge

.PHONY: help setup airflow tools demo test unit bench chaos up down clean

# `make repro` and `make test` set up a local virtual environment on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup setup-test repro test test-fast bench demo-data clean-venv

$(BIN)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet -e .
	touch $@

$(BIN)/.installed-test: $(BIN)/.installed requirements-test.txt
	$(BIN)/pip install --quiet -r requirements-test.txt
	touch $@

setup: $(BIN)/.installed

setup-test: $(BIN)/.installed-test

# The whole pipeline on the demo dataset (params.yaml).
repro: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

# The full test suite, slow end-to-end tests included.
test: setup-test
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

# Unit tests only.
test-fast: setup-test
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -m "not slow"

# Rebuild data/raw/demo from its generator (deterministic).
demo-data: setup
	$(BIN)/python scripts/make_demo.py data/raw/demo

clean-venv:
	rm -rf $(VENV)

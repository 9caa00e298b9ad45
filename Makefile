# Quick start: `make run` then `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 90

.PHONY: venv prefect-db run test test-fast bench bench-autogluon ui server deploy worker clean

venv: $(STAMP)

# torch first: the pinned CPU wheel lies on these machines; an unpinned torch pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	$(MAKE) --no-print-directory prefect-db
	touch $(STAMP)

# Prefect's database in PREFECT_HOME, created and migrated once here (about 18 s on 2 cores), so that the first
# run's temporary server does not pay for it; a deleted .prefect is recreated by the next run.
prefect-db:
	$(BIN)/prefect server database upgrade --yes > /dev/null

run: $(STAMP)
	$(BIN)/trainflow train

# A pytest-xdist worker per usable core and one more (tests/conftest.py; at most 4), a test file to a worker (its
# module fixtures built once): many tests wait on a server, a scheduled run or a subprocess, and the extra worker
# keeps the cores busy meanwhile. Each fit gets its worker's share of the cores (a thread here) and no worker is
# pinned, so that the fits' threads never outnumber the cores. The files go out in collection order, the `slow`
# modules first (the longest first), not by test count. The 20 slowest tests follow the summary: where the suite's
# time goes, in CI's log too.
PYTEST_WORKERS ?= -n auto --maxprocesses=4 --dist loadfile --no-loadscope-reorder
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_WORKERS) --durations=20

# unit and data tests only: no flow, no Prefect server, no full-size training
test-fast: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_WORKERS) tests/unit tests/data

# Prefect server on 127.0.0.1:4200 plus every deployment in deployments/prefect.yaml, served from here.
ui: $(STAMP)
	$(BIN)/trainflow ui

# Production: a Prefect server, a process work pool holding every deployment of deployments/prefect.yaml, and
# as many workers as you start (each `make worker` is one; runs go to whichever polls first, and a deployment's
# concurrency limit holds across them). The pool is the one prefect.yaml names. Point PREFECT_API_URL at the
# server (`make server` prints it); put the server on PostgreSQL with PREFECT_API_DATABASE_CONNECTION_URL
# (docs/operations.md).
POOL := trainflow
PORT ?= 4200
server: $(STAMP)
	@echo "export PREFECT_API_URL=http://127.0.0.1:$(PORT)/api   # for make deploy and make worker"
	$(BIN)/prefect server start --host 127.0.0.1 --port $(PORT)

deploy: $(STAMP)
	$(BIN)/prefect work-pool create $(POOL) --type process --overwrite
	$(BIN)/prefect --no-prompt deploy --all --prefect-file deployments/prefect.yaml

worker: $(STAMP)
	$(BIN)/prefect worker start --pool $(POOL) --type process

# AutoGluon, the anchor of benchmarks/quality.py, in a venv of its own: it needs pandas < 2.4 (this project
# pins pandas 3). The CPU torch wheel first, so that AutoGluon does not pull a CUDA build.
bench-autogluon:
	$(PYTHON) -m venv .venv-autogluon
	.venv-autogluon/bin/python -m pip install --quiet --upgrade pip
	.venv-autogluon/bin/python -m pip install --quiet torch==2.13.0
	.venv-autogluon/bin/python -m pip install --quiet 'autogluon.tabular[lightgbm,catboost,xgboost,fastai]==1.6.3'

bench: $(STAMP)
	$(BIN)/python -m benchmarks.flow_overhead
	$(BIN)/python -m benchmarks.data_throughput
	$(BIN)/python -m benchmarks.validation
	$(BIN)/python -m benchmarks.inference_throughput
	$(BIN)/python -m benchmarks.compression
	$(BIN)/python -m benchmarks.drift_cost
	$(BIN)/python -m benchmarks.training_throughput
	$(BIN)/python -m benchmarks.tuning

clean:
	rm -rf $(VENV) .prefect .pytest_cache

# Quick start: `make run` then `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 90

.PHONY: venv run test bench ui clean

venv: $(STAMP)

# torch first: the pinned CPU wheel lies on these machines; an unpinned torch pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/trainflow train

test: $(STAMP)
	$(BIN)/python -m pytest

# Prefect server on 127.0.0.1:4200 plus every deployment in deployments/prefect.yaml, served from here.
ui: $(STAMP)
	$(BIN)/python -m deployments.ui

bench: $(STAMP)
	$(BIN)/python -m benchmarks.flow_overhead
	$(BIN)/python -m benchmarks.data_throughput
	$(BIN)/python -m benchmarks.inference_throughput
	$(BIN)/python -m benchmarks.drift_cost
	$(BIN)/python -m benchmarks.training_throughput
	$(BIN)/python -m benchmarks.tuning

clean:
	rm -rf $(VENV) .prefect .pytest_cache

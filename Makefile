# The set-up contract: every target installs what it needs into .venv on a fresh clone,
# and running a target twice does no work twice.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
PY := $(BIN)/python
export PATH := $(BIN):$(PATH)
# Yarn turns immutable installs on under CI; .yarnrc.yml turns them off, this keeps pip quiet.
export PIP_DISABLE_PIP_VERSION_CHECK := 1

INSTALLED := $(VENV)/.installed
LAB_SOURCES := $(shell find labextension/src labextension/style labextension/schema -type f 2>/dev/null) \
	labextension/package.json package.json yarn.lock
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: help install demo lab test test-team system-deps lint format bench clean

help:
	@echo "make demo    install, then run the main job on the embedded default store"
	@echo "make test    install (Debian chromium and postgresql too), then run the whole suite"
	@echo "make test-team  the whole suite against the team set-up (PostgreSQL + mlflow server)"
	@echo "make lab     JupyterLab on notebooks/ with the extension"
	@echo "make lint    ruff, mypy, eslint, prettier and tsc"
	@echo "make bench   benchmarks against the plain tools"

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The package in editable mode with its labextension built from labextension/ (hatch-jupyter-builder
# runs jlpm), then linked so that a rebuild shows in Lab without reinstalling.
$(INSTALLED): $(PY) pyproject.toml $(LAB_SOURCES)
	$(PY) -m pip install --quiet hatchling hatch-jupyter-builder editables "jupyterlab>=4.6,<5"
	$(PY) -m pip install --quiet --no-build-isolation --editable ".[test,dev]"
	$(BIN)/jupyter labextension develop . --overwrite >/dev/null
	@touch $@

install: $(INSTALLED)

# The main job on the embedded default store (.mlops/ at the repository root): a tracked
# sweep, the pipeline, a reproduction, a review, a promotion, a diff and the lineage.
demo: install
	$(BIN)/jupyter-mlops status
	cd notebooks && $(PY) demo.py

lab: install
	$(BIN)/jupyter lab --notebook-dir=notebooks $(ROOT_FLAG)

# Debian packages the tests use for real: chromium (browser tests) and postgresql (team mode).
system-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
		|| missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing Debian packages:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else \
			echo "make test needs the Debian packages:$$missing -- run: sudo apt-get install -y$$missing"; \
			exit 1; \
		fi; \
	fi

# The whole suite on the embedded default store, then the store-facing tests again with the
# team set-up as every test's store (kernels, reviews, diffs, the registry, the REST API,
# datasets logged at once); `make test-team` runs the whole suite there. PYTEST_ARGS
# replaces the second pass.
TEAM_PASS := tests/kernel tests/governance tests/test_registry_command.py \
	tests/server/test_runs_api.py tests/server/test_diff_review_api.py tests/server/test_models_api.py \
	tests/tracking/test_datasets.py
test: install system-deps
	$(PY) -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)
	$(if $(PYTEST_ARGS),,$(PY) -m pytest -n 2 --dist loadfile --store team $(TEAM_PASS))

# The same suite with every project tracking into the team set-up instead of the embedded
# default: a PostgreSQL and `mlflow server --serve-artifacts` per worker (tests/store_under_test.py).
test-team: install system-deps
	$(PY) -m pytest -n 2 --dist loadfile --store team $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check jupyter_mlops tests benchmarks notebooks/demo.py docs/generate.py
	$(BIN)/ruff format --check jupyter_mlops tests benchmarks notebooks/demo.py docs/generate.py
	$(BIN)/mypy
	$(BIN)/jlpm lint:check

format: install
	$(BIN)/ruff check --fix jupyter_mlops tests benchmarks notebooks/demo.py docs/generate.py
	$(BIN)/ruff format jupyter_mlops tests benchmarks notebooks/demo.py docs/generate.py
	$(BIN)/jlpm lint

bench: install
	@set -e; for bench in benchmarks/bench_*.py; do echo "== $$bench"; $(PY) $$bench; done

clean:
	rm -rf $(VENV) node_modules labextension/lib jupyter_mlops/labextension .mlops

# Everything a fresh machine needs: `make demo` and `make test` create the virtualenv and install
# the locked dependencies first. Nothing has to be installed by hand.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Prefect 3's pins clash with Airflow's and Dagster's: its adapter is tested in a venv of its own
PVENV ?= .venv-prefect
UV_VERSION := 0.13.8
PYTEST_ARGS ?=
export RUNTIME__DLTHUB_TELEMETRY := false

.PHONY: install install-prefect servers test test-heavy celery-demo demo lint lock chaos chaos-workers crashpoints peer bench clean

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: requirements/dev.lock pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements/dev.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

install: $(VENV)/.installed

$(PVENV)/.installed: requirements/prefect.lock pyproject.toml | $(BIN)/uv
	$(BIN)/uv venv --quiet --allow-existing --python $(BIN)/python $(PVENV)
	$(BIN)/uv pip install --quiet --python $(PVENV)/bin/python -r requirements/prefect.lock
	$(BIN)/uv pip install --quiet --python $(PVENV)/bin/python --no-deps -e .
	touch $@

install-prefect: $(PVENV)/.installed

# the tests start their own throwaway PostgreSQL and Redis (the Celery broker) servers; they need
# Debian's binaries
servers:
	@if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || ! command -v redis-server >/dev/null; then \
		echo "installing PostgreSQL and Redis (Debian packages) for the tests"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql redis-server >/dev/null; \
	fi

test: install install-prefect servers
	$(BIN)/python -m pytest -m "not heavy" $(PYTEST_ARGS)
	$(PVENV)/bin/python -m pytest -m "not heavy" tests/prefect $(PYTEST_ARGS)

# Airflow on the CeleryExecutor (Redis, PostgreSQL, two workers, a state store) until Ctrl-C
celery-demo: install servers
	$(BIN)/python -m tests.airflow.celery_demo

# the Airflow supervisor and Celery stacks and the kill harnesses' CI samples (~10 min)
test-heavy: install servers
	$(BIN)/python -m pytest -m heavy $(PYTEST_ARGS)

# many kill-and-resume cases; prints a kill kind x step table of lost and duplicate rows
N ?= 500
SEED ?= 7
chaos: install servers
	$(BIN)/python -m tests.e2e.chaos --cases $(N) --seed $(SEED)

# tries of one pipeline on three workers (folders), killed at random, some workers never back;
# DuckDB and PostgreSQL x append and merge x with and without a file:// state store
chaos-workers: install servers
	$(BIN)/python -m tests.e2e.workers_chaos --cases $(N) --seed $(SEED)

# a kill at every filesystem mutation of a run, per scenario (first/later/pending run x DuckDB,
# PostgreSQL x append/merge/replace) and signal; prints `crash points: E/K exact` per line
STRIDE ?= 1
LANES ?= 2
OFFSET ?= 0
crashpoints: install servers
	$(BIN)/python -m tests.e2e.crashpoints --stride $(STRIDE) --offset $(OFFSET) --lanes $(LANES)

# dagster-dlt's own test suite (downloaded from PyPI) against our Dagster integration (~4 min)
peer: install
	$(BIN)/python -m tests.e2e.peer_dagster_dlt

# side-by-side ratios printed as tables (bench/README.md); exits 1 when a target is missed
BENCHES ?= overhead parse_cost peers drain resume throughput decompose store
bench: install
	@status=0; for b in $(BENCHES); do \
		echo "== bench/$$b.py"; $(BIN)/python bench/$$b.py || status=1; done; exit $$status

lint: install install-prefect
	$(BIN)/ruff check .
	@# mypy cannot follow the editable package-dir mapping: give it the installed layout in links
	rm -rf build/mypy && mkdir -p build/mypy/dlt_runner
	ln -s $(CURDIR)/core/* build/mypy/dlt_runner/
	ln -s $(CURDIR)/airflow_provider $(CURDIR)/dagster_integration build/mypy/dlt_runner/
	MYPYPATH=build/mypy $(BIN)/mypy -p dlt_runner
	ln -s $(CURDIR)/prefect_integration build/mypy/dlt_runner/
	MYPYPATH=build/mypy $(PVENV)/bin/mypy -p dlt_runner.prefect_integration

demo: install install-prefect
	$(BIN)/python example_dags/core_example.py
	$(BIN)/python example_dags/airflow_demo.py
	$(BIN)/python example_dags/dagster_demo.py
	@# without PREFECT_API_URL the example starts a temporary Prefect server (20 s allowed by default)
	PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=120 $(PVENV)/bin/python example_dags/prefect_shop.py

# refresh the lock after changing dependencies in pyproject.toml
lock: | $(BIN)/uv
	$(BIN)/uv pip compile pyproject.toml --extra test --extra bench --python-version 3.11 \
		--no-header --quiet -o requirements/dev.lock
	$(BIN)/uv pip compile pyproject.toml --extra test-prefect --python-version 3.11 \
		--no-header --quiet -o requirements/prefect.lock

clean:
	rm -rf $(VENV) $(PVENV) .demo .pytest_cache .mypy_cache .ruff_cache build *.egg-info

# The README's quick start is exactly `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PEERS := tests/peers

.PHONY: run test install dev peers wheelhouse lint typecheck pytest postgres-check bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

dev: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'

peers:
	cd $(PEERS) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

# Generated packages depend on httpx only; tests pip-install them into fresh venvs offline
# (--no-index) from this wheelhouse, so no test talks to a package registry.
WHEELHOUSE := build/wheelhouse
wheelhouse: $(BIN)/python
	$(BIN)/pip download --quiet --only-binary=:all: --dest $(WHEELHOUSE) "httpx>=0.27,<1"

run: install
	$(BIN)/ib migrate
	$(BIN)/ib serve

lint: dev
	$(BIN)/ruff check .

typecheck: dev
	$(BIN)/mypy

pytest: dev peers wheelhouse
	$(BIN)/python -m pytest -n 2 --dist loadgroup

# With IB_TEST_POSTGRES_URL set, every test on the `database` fixture runs on SQLite and again on
# a throwaway PostgreSQL database, and tests/scale runs (several replicas need PostgreSQL).
postgres-check: dev
	@$(BIN)/python -m tests.scale.postgres_check

test: dev peers wheelhouse
	$(BIN)/ruff check .
	$(BIN)/mypy
	@if [ -n "$$IB_TEST_POSTGRES_URL" ]; then $(MAKE) --no-print-directory postgres-check; fi
	$(BIN)/python -m pytest -n 2 --dist loadgroup
	@if [ -z "$$IB_TEST_POSTGRES_URL" ]; then \
		echo; \
		echo "!!! The PostgreSQL pass did NOT run: only SQLite was tested. Set IB_TEST_POSTGRES_URL"; \
		echo "!!! (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/postgres) or run .ci/run."; \
		echo; \
	fi

bench: dev peers wheelhouse
	$(BIN)/python bench/generate.py
	$(BIN)/python bench/client.py
	$(BIN)/python bench/publish.py
	$(BIN)/python bench/manager.py
	$(BIN)/python bench/slack_ack.py
	$(BIN)/python bench/microsoft.py
	$(BIN)/python bench/load.py

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache $(PEERS)/node_modules

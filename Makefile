# The README's quick start is exactly `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PEERS := tests/peers

.PHONY: run test install dev peers wheelhouse lint typecheck pytest bench clean

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

test: dev peers wheelhouse
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -n 2 --dist loadgroup

bench: dev peers wheelhouse
	$(BIN)/python bench/generate.py
	$(BIN)/python bench/client.py
	$(BIN)/python bench/publish.py
	$(BIN)/python bench/manager.py

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache $(PEERS)/node_modules

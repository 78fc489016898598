# The README's quick start is exactly `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PEERS := tests/peers

.PHONY: run test install dev peers lint typecheck pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

dev: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'

peers:
	cd $(PEERS) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

run: install
	$(BIN)/ib migrate
	$(BIN)/ib serve

lint: dev
	$(BIN)/ruff check .

typecheck: dev
	$(BIN)/mypy

pytest: dev peers
	$(BIN)/python -m pytest -n 2 --dist loadgroup

test: dev peers
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -n 2 --dist loadgroup

bench: dev peers
	$(BIN)/python bench/generate.py
	$(BIN)/python bench/client.py

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache $(PEERS)/node_modules

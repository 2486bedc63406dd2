# Quick start: `make demo` (install + generate a demo world + nightly scan), `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
DEMO_ACCOUNTS ?= 20000

.PHONY: demo test lint clean-demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/orderguard generate --out data/demo/input --labels data/demo/labels \
		--accounts $(DEMO_ACCOUNTS) --seed 7 --preset default > data/demo-generate.json
	$(BIN)/orderguard scan --input data/demo/input --out data/demo/out --db data/warehouse.duckdb

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src pipelines tests

clean-demo:
	rm -rf data/demo data/warehouse.duckdb data/warehouse.duckdb.lock

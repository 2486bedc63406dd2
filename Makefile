# Quick start: `make demo` (install + generate a demo world + nightly scan), `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
DEMO_ACCOUNTS ?= 20000

.PHONY: demo test lint clean-demo cjk-font

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev,dask]"
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed cjk-font
	$(BIN)/orderguard generate --out data/demo/input --labels data/demo/labels \
		--accounts $(DEMO_ACCOUNTS) --seed 7 --preset default > data/demo-generate.json
	$(BIN)/orderguard scan --input data/demo/input --out data/demo/out --db data/warehouse.duckdb

test: $(VENV)/.installed-dev cjk-font
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src pipelines tests

# Chinese labels in report charts need a CJK font from a package (Debian's fonts-noto-cjk):
# installed when missing and running as root; never fails the build (charts fall back to English).
CJK_FONT := /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc
cjk-font:
	@if [ ! -e $(CJK_FONT) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing fonts-noto-cjk for Chinese chart labels"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-cjk) \
			>/dev/null 2>&1 || echo "note: fonts-noto-cjk not installed; report charts use English labels"; \
	fi

# the demo's warehouse is the default one, so its models are the default models/ folder's
clean-demo:
	rm -rf data/demo data/warehouse.duckdb data/warehouse.duckdb.lock
	rm -f models/*.joblib models/*.meta.json

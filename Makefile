# e-Backpack: `make demo` runs the whole pipeline on sample Moodle events; `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-unit lint typecheck bench schemas serve clean system-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ebackpack demo

test: $(STAMP)
	$(BIN)/pytest tests

test-unit: $(STAMP)
	$(BIN)/pytest tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/benchmark.py

schemas: $(STAMP)
	$(BIN)/python -m schemas.export

serve: $(STAMP)
	$(BIN)/ebackpack serve

# Debian packages the renderer and the tests need (WeasyPrint's Pango, fonts, pdftoppm, zbarimg).
system-deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	  libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libharfbuzz-subset0 fonts-dejavu-core \
	  poppler-utils zbar-tools

clean:
	rm -rf .ebackpack

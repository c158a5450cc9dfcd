# e-Backpack: `make demo` runs the whole pipeline on sample Moodle events; `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Debian packages: WeasyPrint's Pango and HarfBuzz (subset: 6x faster PDFs), fonts, poppler and zbar
# (the importer reads uploaded PDFs and QR codes with pdftotext, pdftoppm and libzbar under prlimit;
# the tests read what we render with pdftoppm, pdftotext, pdfinfo, zbarimg, qpdf), and TCPDF (the
# engine of Moodle's mod_customcert) that bench/render_benchmark.py compares the renderer with;
# Chromium for the browser tests (Playwright drives it), wrk and nginx (its anchor row) for the web
# benchmark, docker-compose (v1) to validate docker-compose.yml without a Docker engine, Prometheus and
# promtool to check its config and alerting rules and to run the dashboard's queries on a running
# pipeline (the tests start their own prometheus process; the package's service is not used).
DEBS   := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libharfbuzz-subset0 fonts-dejavu-core \
          poppler-utils libzbar0 zbar-tools util-linux qpdf php-cli php-mbstring php-curl php-tcpdf \
          chromium wrk nginx-light docker-compose prometheus

.PHONY: demo test test-unit lint bench schemas serve clean system-deps

$(STAMP): pyproject.toml
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! dpkg -s $(DEBS) >/dev/null 2>&1; then \
	  $(MAKE) system-deps; fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ebackpack demo

# Two pytest processes (pytest-xdist), each with its own broker and S3 server; a test file stays on one
# (its module fixtures are set up once). TEST_WORKERS=0 runs everything in this process.
TEST_WORKERS ?= 2

test: lint
	$(BIN)/pytest tests -n $(TEST_WORKERS) --dist loadfile --durations=25

test-unit: $(STAMP)
	$(BIN)/pytest tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python bench/benchmark.py

schemas: $(STAMP)
	$(BIN)/python -m schemas.export

serve: $(STAMP)
	$(BIN)/ebackpack serve

system-deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEBS)

clean:
	rm -rf .ebackpack

# Two commands on a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
CLI    := $(VENV)/bin/lulupay-analytics
PYTEST_ARGS ?=

.PHONY: run test install install-dev system-deps bench clean help

help:
	@echo "make run    - install, start the embedded store, serve with gunicorn (gunicorn.conf.py) on http://127.0.0.1:8050, seed demo data"
	@echo "make test   - install what the tests need and run the whole suite"
	@echo "make bench  - run the benchmarks (JSON lines on stdout)"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(PIP) install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# `serve` runs the Procfile's web line (gunicorn --config gunicorn.conf.py) as its child, on the
# embedded Valkey when REDIS_URL is unset (docs/deployment.md, "make run and serve").
run: install
	$(CLI) serve --demo

# Debian packages the browser and monitoring tests need (installed when root; see .ci/system-deps).
system-deps:
	bash .ci/system-deps

test: install-dev system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install-dev
	$(PY) benchmarks/ingest.py --clients 2
	$(PY) benchmarks/dashboard.py
	$(PY) benchmarks/metrics.py
	$(PY) benchmarks/websocket.py
	$(PY) benchmarks/intelligence.py
	-$(PY) benchmarks/soak.py
	$(PY) benchmarks/viewers.py

clean:
	rm -rf $(VENV) build *.egg-info

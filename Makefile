# Every target sets itself up: a fresh clone needs only python3.11, node and npm.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup test run demo bench loadtest clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

.venv-checkov/.installed: requirements-checkov.txt
	$(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install --quiet -r requirements-checkov.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.installed node_modules/.installed

test: setup .venv-checkov/.installed
	CHECKOV=$(CURDIR)/.venv-checkov/bin/checkov $(PY) -m pytest -q

run: setup
	$(PY) -m devtools.run

demo: setup
	$(PY) -m scripts.demo

bench: setup
	$(PY) -m bench

loadtest: setup .venv-checkov/.installed
	CHECKOV=$(CURDIR)/.venv-checkov/bin/checkov $(PY) -m pytest -q -m load tests/load

clean:
	rm -rf $(VENV) .venv-checkov node_modules .pytest_cache

# Every target sets itself up: a fresh clone needs only python3.11, node and npm (and, for the
# page's browser tests, Debian's chromium and its headless shell, which `make test` installs when
# it runs as root).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
CHROMIUM ?= /usr/bin/chromium
# Most page tests run in Chromium's headless shell, about 30 % less CPU than the desktop browser
# (tests/page/conftest.py); without it they all run in the desktop browser.
CHROMIUM_HEADLESS_SHELL ?= /usr/bin/chromium-headless-shell
# Python writes its bytecode caches (__pycache__, ignored by git and by .funcignore), even where
# the machine's environment says not to: otherwise each of the suite's processes (a worker per
# core, and every host and CLI the tests start) compiles our modules, and pytest rewrites the
# asserts of about 70 test modules, at every start (about 4 s of CPU a worker). `make bench` turns
# it back on for its cold-start section (bench/sections/cold_start.py).
unexport PYTHONDONTWRITEBYTECODE

# Test workers (pytest-xdist): two more than the cores, since many tests wait (on a backoff, a
# browser, a subprocess) and leave their core to another: on 2 cores, 3 workers took 241 to
# 259 s (mean 251 s), 4 took 222 to 260 s (mean 241 s) and 5 took 222 s; since, 4 take 167 to
# 229 s, as fast as the machine is at the time (docs/DECISIONS.md, "The suite on every core").
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 2 )))

.PHONY: setup browser lint test test-fast fmt docs fuzz run demo bench loadtest clean

$(VENV)/.installed: requirements.txt requirements-dev.txt client/pyproject.toml
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

# The page's tests drive Debian's chromium through Playwright (Playwright's own browser download
# cannot be reached from our machines).
browser:
	@if [ -x "$(CHROMIUM)" ] && [ -x "$(CHROMIUM_HEADLESS_SHELL)" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's chromium and chromium-headless-shell for the page's browser tests..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-headless-shell >/dev/null; \
	elif [ -x "$(CHROMIUM)" ]; then \
		echo "Note: without Debian's chromium-headless-shell the page's tests run in the desktop chromium, with about 40 % more CPU ('sudo apt-get install chromium-headless-shell')." >&2; \
	else \
		echo "The page's browser tests need Debian's chromium at $(CHROMIUM): run 'sudo apt-get install chromium chromium-headless-shell' (or set CHROMIUM=/path/to/chromium)." >&2; \
		exit 1; \
	fi

# Lint, format check, types (Python, and the page's JavaScript through its JSDoc types:
# tsconfig.json), layers (pyproject.toml) and the generated README sections.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	node_modules/.bin/tsc -p tsconfig.json
	$(VENV)/bin/lint-imports
	$(PY) -m devtools.docs --check

# The whole suite, as CI runs it: on every core, with branch coverage of the app (its floor is
# pyproject.toml's fail_under) and the 15 slowest tests named.
test: setup .venv-checkov/.installed browser lint
	rm -f .coverage .coverage.*
	@# checkov's Bicep parser (pycep, on lark) builds its LALR tables the first time it runs on a
	@# machine (about 22 s of CPU) and keeps them in the temp directory; built here (0.6 s once
	@# cached), so the checkov test costs the same on a fresh machine as on a used one.
	.venv-checkov/bin/python -c "from pycep import BicepParser; BicepParser()"
	@# On a fresh clone nothing is compiled yet, and every worker would compile our modules and
	@# rewrite the tests' asserts at once, under the tracer: 4.5 s of CPU each. Done here once,
	@# untraced, by collecting the tests: 4.4 s (2.1 s when the caches exist, so then skipped).
	@# (A collection error shows in the run that follows.)
	@test -d tests/__pycache__ || CHROMIUM=$(CHROMIUM) $(PY) -m pytest -q --collect-only -p no:cacheprovider >/dev/null || true
	@# Hypothesis builds a table of Unicode categories the first time a text strategy draws on a
	@# machine, and keeps it in .hypothesis/; on a fresh clone every worker that drew text before
	@# another had written it built it under the tracer (4.4 s of CPU each). Built here, untraced:
	@# 2.2 s.
	@test -d .hypothesis/unicode_data || $(PY) -c "from hypothesis import given, strategies as st; given(st.text())(lambda text: None)()"
	CHECKOV=$(CURDIR)/.venv-checkov/bin/checkov CHROMIUM=$(CHROMIUM) CHROMIUM_HEADLESS_SHELL=$(CHROMIUM_HEADLESS_SHELL) COVERAGE_FILE=$(CURDIR)/.coverage \
		$(VENV)/bin/coverage run -m pytest -q -n $(TEST_WORKERS) --dist worksteal --durations=15
	$(VENV)/bin/coverage combine -q
	$(VENV)/bin/coverage report

# The loop while coding: lint, then the unit and integration tests (no browser, no subprocess
# stacks), in under a minute.
test-fast: setup lint
	$(PY) -m pytest -q -n $(TEST_WORKERS) -m "not slow" tests/unit tests/integration

fmt: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# README's generated tables, the OpenAPI document's examples recorded from a real local run, and
# the README's screenshot of the page (taken by its browser test only when asked, so that
# `make test` leaves the tree as it was).
docs: setup node_modules/.installed browser
	$(PY) -m devtools.openapi_examples
	$(PY) -m devtools.docs
	PAGE_SCREENSHOT=1 CHROMIUM=$(CHROMIUM) $(PY) -m pytest -q -p no:cacheprovider \
		tests/page/test_results.py -k test_failed_and_missing_images_are_explained_and_rerun_and_the_csv_downloads

# schemathesis against the running app, longer than in `make test` and with a fresh seed.
fuzz: setup node_modules/.installed
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-300} FUZZ_SEED=$${FUZZ_SEED:-} $(PY) -m pytest -q -s tests/e2e/test_fuzz.py

run: setup
	$(PY) -m devtools.run

demo: setup
	$(PY) -m scripts.demo

# All sections; one or some with e.g. `make bench BENCH="--only cold_start"` (python -m bench --help).
bench: setup
	PYTHONDONTWRITEBYTECODE=1 $(PY) -m bench $(BENCH)

loadtest: setup .venv-checkov/.installed
	CHECKOV=$(CURDIR)/.venv-checkov/bin/checkov $(PY) -m pytest -q -m load tests/load

clean:
	rm -rf $(VENV) .venv-checkov node_modules .pytest_cache .coverage .coverage.* htmlcov .mypy_cache .ruff_cache .schemathesis schemathesis-report

# The two set-up commands of the README, and the checks CI runs after them.
# Everything installs into .venv with the pinned versions of constraints.txt.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test lint bench help

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "MarketGate needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(INSTALLED)

demo: $(INSTALLED)  ## run MarketGate with a demo product (SQLite file, in-memory store)
	$(BIN)/marketgate demo

test: $(INSTALLED)  ## the whole test suite, on SQLite + in-memory store AND PostgreSQL + Redis
	$(BIN)/pytest

lint: $(INSTALLED)  ## ruff and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(INSTALLED)  ## the benchmarks (print ratios against a bare route; not part of CI)
	$(BIN)/python -m bench.basic_calls

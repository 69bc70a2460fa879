# Spyglass: `make demo` starts it, `make test` runs the tests. Both set themselves up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo serve test bench clean

setup: $(STAMP) static/vendor/htmx.min.js

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Spyglass needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

static/vendor/htmx.min.js: package.json
	npm install --no-audit --no-fund --loglevel=error

demo: setup
	$(BIN)/spyglass demo --open

serve: setup
	$(BIN)/spyglass serve

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/query.py

clean:
	rm -rf $(VENV) node_modules static/vendor data test-output

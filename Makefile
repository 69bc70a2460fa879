# Spyglass: `make demo` starts it, `make test` runs the tests. Both set themselves up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo serve test bench protos clean

setup: $(STAMP) static/vendor/htmx.min.js

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Spyglass needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

static/vendor/htmx.min.js: package.json package-lock.json
	npm install --no-audit --no-fund --loglevel=error

demo: setup
	$(BIN)/spyglass demo --open

serve: setup
	$(BIN)/spyglass serve

# Two pytest-xdist workers, each taking a whole test file at a time (so a file's demo or
# browser, started once for the module, is never started twice); the suite spends much of
# its time waiting on processes it starts. `make test TEST_WORKERS=0` runs it serially.
TEST_WORKERS ?= 2

test: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

bench: setup
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/query.py

# Regenerate the committed gRPC modules of the demo from their .proto (grpcio-tools is
# needed only for this, so it goes to a throw-away directory, not into the venv).
protos: setup
	rm -rf $(VENV)/grpc-tools
	$(BIN)/pip install --quiet --target $(VENV)/grpc-tools "grpcio-tools<=$$($(BIN)/python -c 'import grpc; print(grpc.__version__)')"
	PYTHONPATH=$(VENV)/grpc-tools $(BIN)/python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. \
		--grpc_python_out=. demo_services/proto/users.proto
	rm -rf $(VENV)/grpc-tools

clean:
	rm -rf $(VENV) node_modules static/vendor data test-output

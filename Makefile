# Two entry points for a fresh machine with Python 3.11 and make:
#   make demo   build the environment if needed, then run the whole job on the bundled sample world
#   make test   build the environment if needed, then run the test suite
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test env clean lock

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv>=0.5"
	# --compile-bytecode: Prefect's temporary server starts twice as fast with .pyc files present.
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode --no-deps -e .
	touch $(STAMP)

env: $(STAMP)

demo: $(STAMP)
	$(BIN)/transship demo

# Two workers (the suite's target machine has two cores), a test file to a worker: a file's shared fixtures
# (a sample warehouse, a crash drill's runs) are built once. pytest's exit 5 (no tests collected) is not a failure.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS) || [ $$? -eq 5 ]

lock:
	$(BIN)/uv pip compile pyproject.toml --extra test --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) warehouse/*.duckdb warehouse/*.duckdb.wal reports demo .prefect

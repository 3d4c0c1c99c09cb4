# Two entry points for a fresh machine with Python 3.11 and make:
#   make demo   build the environment if needed, then run the whole job on the bundled sample world
#   make test   build the environment if needed, then run the test suite
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The test environment: the runtime set plus the test tools and the dask extra (requirements-test.lock).
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test env clean lock

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv>=0.5"

# --compile-bytecode: Prefect's temporary server starts twice as fast with .pyc files present.
$(STAMP): pyproject.toml requirements.lock | $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode --no-deps -e .
	touch $(STAMP)

$(TEST_STAMP): pyproject.toml requirements-test.lock | $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode -r requirements-test.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode --no-deps -e .
	touch $(TEST_STAMP)

env: $(STAMP)

demo: $(STAMP)
	$(BIN)/transship demo

# Two workers (the suite's target machine has two cores), a test file to a worker: a file's shared fixtures
# (a sample warehouse, a crash drill's runs) are built once. pytest's exit 5 (no tests collected) is not a failure.
TEST_WORKERS ?= 2
test: $(TEST_STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS) || [ $$? -eq 5 ]

# Two locks: what a run needs (make demo, deployments) and what the tests need besides. Each compile keeps the
# versions its file already pins unless pyproject.toml asks for others.
lock:
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra test --python-version 3.11 -o requirements-test.lock

clean:
	rm -rf $(VENV) warehouse/*.duckdb warehouse/*.duckdb.wal reports demo .prefect

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

test: $(STAMP)
	$(BIN)/python -m pytest

lock:
	$(BIN)/uv pip compile pyproject.toml --extra test --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) warehouse/*.duckdb warehouse/*.duckdb.wal reports demo .prefect

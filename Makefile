# Prism: `make demo` runs the demo, `make test` runs the tests; each sets up everything it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# `make bench` measures on the real services (`make bench-quick`: a short run).
.PHONY: demo test unit lint bench bench-quick services-up services-down migrate serve status clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

services-up: $(STAMP)
	$(BIN)/prism services up

services-down: $(STAMP)
	$(BIN)/prism services down

migrate: services-up
	$(BIN)/prism migrate

demo: migrate
	$(BIN)/prism demo

serve: migrate
	$(BIN)/prism serve

status: $(STAMP)
	$(BIN)/prism status

bench: migrate
	$(BIN)/prism bench

bench-quick: migrate
	$(BIN)/prism bench --quick

test: migrate
	$(BIN)/pytest -q -p no:cacheprovider

# The tests that need no service (domain, projection functions, settings, actors on the stub broker).
unit: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider tests/unit

# Style and types: ruff's rules and format, mypy on the packages (configured in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var

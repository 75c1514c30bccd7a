# Prism: `make demo` runs the demo, `make test` runs the tests; each sets up everything it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# `make bench` measures on the real services (`make bench-quick`: a short run).
.PHONY: demo test bench bench-quick services-up services-down migrate serve status clean

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

clean:
	rm -rf $(VENV) var

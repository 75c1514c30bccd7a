# Prism: `make demo` runs the demo, `make test` runs the tests; each sets up everything it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# `make bench` measures on the real services (`make bench-quick`: a short run).
.PHONY: demo test unit lint lock bench bench-quick services-up services-down migrate serve status clean

# Exactly the locked tree (every package, direct and transitive, checked against its hashes), then Prism itself.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

# requirements.lock again from pyproject.toml's pins, after a pin changes.
lock: $(STAMP)
	$(BIN)/pip install --quiet uv==0.13.9
	$(BIN)/uv pip compile pyproject.toml --all-extras --generate-hashes --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 -o requirements.lock

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

# Then the readers' end-to-end tests and the cluster drill again on the stores as clusters (started by the tests
# themselves, stopped after): a Redis Cluster, three Elasticsearch nodes, a Postgres replica for dashboards.
CLUSTER_TESTS := tests/e2e/test_order_pages.py tests/e2e/test_read_your_writes.py tests/e2e/test_search.py \
	tests/e2e/test_dashboards.py tests/e2e/test_shipping.py tests/e2e/test_rebuild.py tests/e2e/test_partitions.py \
	tests/e2e/test_cluster_drill.py tests/integration/test_served_reads.py tests/integration/test_audit.py \
	tests/integration/test_lost_writes.py tests/integration/test_cluster_pointer.py

# The console's browser test drives Debian's Chromium, installed first when missing.
test: migrate
	$(BIN)/python -m infra.services.browser
	$(BIN)/pytest -q -p no:cacheprovider --durations=20
	PRISM_TEST_STORES=cluster $(BIN)/pytest -q -p no:cacheprovider $(CLUSTER_TESTS); \
		status=$$?; $(BIN)/prism services down --cluster; exit $$status

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

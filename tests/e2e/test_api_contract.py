"""The served OpenAPI is the contract: schemathesis, every check on, against the running Prism, finds nothing.

Every status a route answers is documented (with the shared ``Error`` body), every request the schema
calls valid is accepted and every one it calls invalid is refused, and the links from ``POST /orders``
(and the other commands answering an id) lead to the routes that take that id. A bounded number of
examples per operation keeps this a small part of the suite's time; a fixed seed keeps CI repeatable
(``PRISM_CONTRACT_SEED`` tries others, ``PRISM_CONTRACT_EXAMPLES`` more cases).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import OPERATOR
from tests.e2e.conftest import open_tenant

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
#: Cases per operation and phase: enough to reach each constraint's edges, few enough for CI.
EXAMPLES = int(os.environ.get("PRISM_CONTRACT_EXAMPLES", "20"))
SEED = os.environ.get("PRISM_CONTRACT_SEED", "20251201")
#: The whole run's limit; it takes well under it on two cores.
TIMEOUT_SECONDS = 240

#: Routes that span every tenant take an operator credential; every other one the tenant's key (``-H``).
OPERATOR_ONLY = r"^/(tenants|audit|deadletters|projections/)"


#: What a schema-valid request may still be answered besides a success: every documented refusal but 422.
ACCEPTED = '["2xx", "400", "401", "403", "404", "409", "429"]'
#: The same, and 422: for operations where a schema-valid value can still be invalid.
OR_422 = ACCEPTED[:-1] + ', "422"]'


async def _seed(http, headers: dict[str, str]) -> dict[str, str]:
    """A customer, a product and an order of the tenant, so that the operations taking their ids get past a 404."""

    async def post(path: str, body: dict) -> str:
        response = await http.post(path, json=body, headers=headers)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    customer = await post("/customers", {"name": "Contract Customer", "email": "contract@example.com"})
    product = await post("/products", {"name": "Contract Product", "price": "9.99"})
    order = await post("/orders", {"customer_id": customer, "items": [{"product_id": product, "quantity": 1}]})
    return {"customer": customer, "product": product, "order": order}


def _config(tmp_path: Path, seeded: dict[str, str]) -> Path:
    config = tmp_path / "schemathesis.toml"
    config.write_text(f"""request-timeout = 15

[[operations]]
include-path-regex = '{OPERATOR_ONLY}'
headers = {{ Authorization = "{OPERATOR["Authorization"]}" }}

# An audit of every tenant the test run has filled takes seconds on two cores: audit the one seeded here.
[[operations]]
include-path-regex = '^/audit'
headers = {{ Authorization = "{OPERATOR["Authorization"]}" }}
parameters = {{ "query.tenant" = "{seeded["tenant"]}" }}
request-timeout = 120
checks.max_response_time = 120

# No schema can say which SQL ClickHouse's parser takes: a schema-valid string may still be refused (400, 422).
[[operations]]
include-path = "/analytics/sql"
checks.positive_data_acceptance.expected-statuses = {OR_422}

# Cursors whose validity depends on state, not on the schema: a customer's cursor must be one of that customer's
# orders, a search cursor one this API gave out (the schema gives its alphabet and length, and says page and
# cursor exclude each other, which OpenAPI cannot express either). Their refusal is a uniform 422.
[[operations]]
include-path-regex = '^/customers/\\{{customer_id\\}}/orders$'
checks.positive_data_acceptance.expected-statuses = {OR_422}

[[operations]]
include-path-regex = '^/search$'
checks.positive_data_acceptance.expected-statuses = {OR_422}

# Ids that exist, so that these operations reach their logic instead of a 404 (the links reach them rarely).
[[operations]]
include-path-regex = '^/orders$'  # include-path is a prefix: it would take /orders/{{order_id}}/... too
parameters = {{ "body.customer_id" = "{seeded["customer"]}", "body.items[*].product_id" = "{seeded["product"]}" }}

[[operations]]
include-path-regex = '^/orders/\\{{order_id\\}}'
parameters = {{ "path.order_id" = "{seeded["order"]}" }}

[[operations]]
include-path = "/customers/{{customer_id}}/dashboard"
parameters = {{ "path.customer_id" = "{seeded["customer"]}" }}
""")
    return config


def _command(base_url: str, config: Path, headers: dict[str, str], reports: Path) -> list[str]:
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(config),
        "run",
        f"{base_url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        SEED,
        "--workers",
        "2",  # the server shares the machine's two cores; more workers only queue
        "--generation-database",
        "none",  # nothing written into the working tree
        "--report",
        "junit",
        "--report-dir",
        str(reports),
        "--no-color",
    ]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    return command


async def test_schemathesis_finds_no_failure(server, http, tenant_id, tmp_path):
    headers = await open_tenant(http, tenant_id)
    seeded = await _seed(http, headers) | {"tenant": tenant_id}
    command = _command(server, _config(tmp_path, seeded), headers, tmp_path / "reports")
    started = time.monotonic()
    run = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, cwd=tmp_path
    )
    took = time.monotonic() - started
    output = run.stdout + run.stderr
    print(output[-6000:], f"\nschemathesis took {took:.0f}s")
    assert run.returncode == 0, output[-20000:]

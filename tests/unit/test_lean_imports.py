"""What serve's processes import: each interpreter holds only the libraries its role uses.

Run in a fresh interpreter each (this one has imported everything): the supervisor (and its relay) and a Redis or
dashboards worker load neither the HTTP app, nor the Elasticsearch or ClickHouse clients, nor pyarrow; an API process
beside the embedded engine's owner loads the client it reads with, still without pyarrow, which the client imports
only when it is installed and importable, and not the ClickHouse client, which only the owner uses. None loads
OpenTelemetry's SDK while tracing is off.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "pyarrow",
    "numpy",
    "elasticsearch",
    "clickhouse_connect",
    "fastapi",
    "uvicorn",
    "chdb",
    "requests",
    "pygments",
    "rich",
    "opentelemetry.sdk",
)
SUPERVISOR = "import infra.processes.supervisor, infra.processes.supervisor_work, infra.processes.pipeline"
#: A worker of serve's for Redis or the dashboards: its pipeline and the projections' registry.
WORKER = "import infra.processes.pipeline, projections.registry, workers.catch_up"
#: An API process beside the engine's owner: its app, created with handlers for the errors of the store drivers it
#: opens (all but ClickHouse, which its owner process answers for).
API = (
    "import infra.processes.entrypoints\nfrom infra.http.app import create_app\n"
    "create_app(Settings(clickhouse_owner_socket='/run/owner'))"
)


def loaded(imports: str, lean: bool = True) -> set[str]:
    """Which of ``HEAVY`` a fresh interpreter holds after ``imports`` (with serve's processes' ``leave_out_unused``
    first, if ``lean``)."""
    code = (
        ("from infra.processes.lean import leave_out_unused; leave_out_unused()\n" if lean else "")
        + "from infra.settings import Settings; Settings()\n"
        + f"{imports}\nimport json, sys\n"
        + f"print(json.dumps([m for m in {HEAVY!r} if sys.modules.get(m) is not None]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_the_supervisor_and_its_relay_load_no_http_app_no_search_client_and_no_pyarrow() -> None:
    assert loaded(SUPERVISOR) == set()


def test_a_redis_or_dashboards_worker_loads_no_store_client_it_does_not_write_to() -> None:
    assert loaded(WORKER) == set()


def test_an_api_process_loads_the_search_client_without_pyarrow() -> None:
    assert loaded(API) == {"elasticsearch", "fastapi", "uvicorn"}


def test_without_the_remedy_the_search_client_brings_pyarrow() -> None:
    assert {"pyarrow", "numpy"} <= loaded(API, lean=False)


def test_a_search_failure_is_still_translated_once_the_client_is_loaded() -> None:
    import elastic_transport

    from projections.stores import registry

    refused = elastic_transport.ConnectionError("refused")
    assert elastic_transport.TransportError in registry.driver_errors()
    assert registry.translate(refused, "elasticsearch").retryable


def test_an_app_that_opens_clickhouse_has_its_failures_handled_and_one_beside_the_owner_does_not() -> None:
    from clickhouse_connect.driver.exceptions import ClickHouseError

    from infra.http.app import create_app
    from infra.settings import Settings

    assert ClickHouseError in create_app(Settings()).exception_handlers
    beside = create_app(Settings(clickhouse_owner_socket="/run/owner")).exception_handlers
    assert ClickHouseError not in beside and OSError in beside


def test_the_lean_owner_reads_and_writes_the_embedded_engine(tmp_path) -> None:
    """The engine's owner runs with ``UNUSED`` absent too: chDB and its driver work without them."""
    code = (
        "from infra.processes.lean import leave_out_unused; leave_out_unused()\n"
        "from projections.stores.clickhouse import connect\n"
        f"client = connect('', {str(tmp_path / 'chdb')!r})\n"
        "client.command('CREATE TABLE t (n UInt32) ENGINE = MergeTree ORDER BY n')\n"
        "client.insert('t', [[1], [2]], column_names=['n'])\n"
        "import sys; print(client.query('SELECT sum(n) FROM t').result_rows[0][0], 'pyarrow' in sys.modules and "
        "sys.modules['pyarrow'] is not None)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split()[-2:] == ["3", "False"]


def test_a_process_that_opens_clickhouse_translates_its_failures() -> None:
    from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError

    from projections.stores import registry

    assert ClickHouseError in registry.driver_errors()
    assert registry.translate(OperationalError("refused"), "clickhouse").retryable

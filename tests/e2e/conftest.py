"""The whole system over HTTP: API, readers, relay and Dramatiq workers on the real Redis broker."""

from __future__ import annotations

import httpx
import pytest_asyncio

from infra.processes.entrypoints import BackgroundServer, Pipeline, app_with_pipeline
from tests.conftest import OPERATOR


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def server(fresh_services):
    """Package-scoped: Dramatiq keeps one event-loop thread per process, which no other test may replace meanwhile."""
    settings = fresh_services
    running = BackgroundServer(app_with_pipeline(settings, Pipeline(settings)), settings.api_host, settings.api_port)
    running.start()
    yield f"http://{settings.api_host}:{settings.api_port}"
    running.stop()


@pytest_asyncio.fixture
async def http(server):
    async with httpx.AsyncClient(base_url=server, timeout=30) as client:
        yield client


#: The headers that act as each tenant these tests registered.
_CREDENTIALS: dict[str, dict[str, str]] = {}


async def open_tenant(http: httpx.AsyncClient, tenant_id: str, name: str = "Shop") -> dict[str, str]:
    """Register a tenant as an operator; answer the headers that act as it (its first API key)."""
    response = await http.post("/tenants", json={"id": tenant_id, "name": name}, headers=OPERATOR)
    assert response.status_code == 201, response.text
    _CREDENTIALS[tenant_id] = {"Authorization": f"Bearer {response.json()['key']['key']}"}
    return _CREDENTIALS[tenant_id]


def headers_of(tenant_id: str) -> dict[str, str]:
    """The headers of a tenant registered with ``open_tenant``."""
    return dict(_CREDENTIALS[tenant_id])


@pytest_asyncio.fixture
async def api_tenant(http, tenant_id):
    await open_tenant(http, tenant_id)
    return tenant_id

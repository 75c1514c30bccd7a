"""The whole system over HTTP: API, readers, relay and Dramatiq workers on the real Redis broker."""

from __future__ import annotations

import httpx
import pytest_asyncio

from infra.runtime import BackgroundServer, Pipeline, app_with_pipeline


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


@pytest_asyncio.fixture
async def api_tenant(http, tenant_id):
    response = await http.post("/tenants", json={"name": "Shop"}, headers={"X-Tenant-ID": tenant_id})
    assert response.status_code == 201, response.text
    return tenant_id

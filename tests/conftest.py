"""Shared fixtures: real services, a test write database, a test namespace in every read store."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import text

from infra import bootstrap, sandbox, services
from infra.settings import Settings
from projections.base import Projection
from projections.stores.clients import Stores
from workers.catch_up import catch_up
from write.bus import CommandBus

#: ``PRISM_TEST_SLOT=N`` (1-5) gives a run databases, Redis databases and a namespace of its own, so that
#: two runs on one machine never touch each other's data.
SLOT = int(os.environ.get("PRISM_TEST_SLOT", "0"))
#: ``PRISM_TEST_STORES=cluster`` runs the tests on the clusters ``prism services up --cluster`` starts (the
#: ``clusters`` fixture starts them), in databases and a namespace of their own.
STORES = os.environ.get("PRISM_TEST_STORES", "single")
ON_CLUSTERS = STORES == "cluster"
NAMESPACE = (f"prismslot{SLOT}" if SLOT else "prismtest") + ("c" if ON_CLUSTERS else "")
_DATABASES = (f"prism_slot{SLOT}" if SLOT else "prism_test") + ("_c" if ON_CLUSTERS else "")
_REDIS_DBS = (str(4 + 2 * SLOT), str(5 + 2 * SLOT)) if SLOT else ("2", "3")
OPERATOR_TOKEN = "test-operator-token"
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def _test_settings(tmp: Path) -> Settings:
    base = Settings()
    return Settings(
        env="development",
        stores=STORES,
        namespace=NAMESPACE,
        write_database_url=sandbox.sibling(base.write_database_url, f"{_DATABASES}_write"),
        dashboards_database_url=sandbox.sibling(base.dashboards_database_url, f"{_DATABASES}_dashboards"),
        redis_url=sandbox.sibling(base.redis_url, _REDIS_DBS[0]),
        broker_url=sandbox.sibling(base.broker_url, _REDIS_DBS[1]),
        chdb_path=tmp / "chdb",
        api_port=sandbox.free_port(),
        read_wait_seconds=2.0,
        batch_size=500,
        retry_min_backoff_ms=50,
        retry_max_backoff_ms=500,
        relay_poll_seconds=0.5,
        operator_token=OPERATOR_TOKEN,
        auth_cache_seconds=1.0,
        sql_max_seconds=5.0,
        console_sample_seconds=2.0,
    )


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return _test_settings(tmp_path_factory.mktemp("prism"))


@pytest_asyncio.fixture(scope="session")
async def fresh_services(settings: Settings) -> Settings:
    """Empty test databases, Redis databases and indexes; the write schema migrated with Alembic (on the clusters,
    started first if they are not running)."""
    if ON_CLUSTERS:
        await asyncio.to_thread(services.up, settings)
    await sandbox.reset(settings)
    return settings


@pytest_asyncio.fixture(scope="session")
async def write_engine(fresh_services: Settings):
    engine = bootstrap.write_engine(fresh_services)
    yield engine
    await engine.dispose()


@pytest_asyncio.fixture(scope="session")
async def bus(write_engine) -> CommandBus:
    return CommandBus(write_engine)


@pytest_asyncio.fixture(scope="session")
async def stores(fresh_services: Settings) -> AsyncIterator[Stores]:
    opened = await bootstrap.open_stores(fresh_services)
    yield opened
    await bootstrap.close_stores(opened)


@pytest_asyncio.fixture(scope="session")
async def projections(stores: Stores) -> dict[str, Projection]:
    built = bootstrap.projections(stores)
    for projection in built.values():
        await projection.setup()
    return built


@pytest.fixture
def tenant_id() -> str:
    return f"t-{secrets.token_hex(4)}"


@pytest_asyncio.fixture
async def tenant(bus: CommandBus, tenant_id: str) -> str:
    from write.commands import RegisterTenant

    await bus.execute(RegisterTenant(tenant_id, "Test tenant"))
    return tenant_id


@pytest_asyncio.fixture
async def project_all(write_engine, projections) -> Callable[[], Awaitable[None]]:
    """Catch every projection up with the log, directly (no broker)."""

    async def run() -> None:
        for projection in projections.values():
            progress = await catch_up(write_engine, projection, batch_size=500)
            assert not progress.skipped, f"{projection.name} was held by another consumer"
            assert not (progress.halted or progress.stepped_aside), f"{projection.name} stopped early: {progress}"

    return run


def apart(settings: Settings, tmp_path: Path, name: str, **update) -> Settings:
    """Settings for a sandbox beside the session's: databases, namespace and embedded engine of its own (the Redis
    databases are shared: every key there is under the namespace)."""

    def database(url: str) -> str:
        last = url.rsplit("/", 1)[1]
        return sandbox.sibling(url, last.replace("_write", f"_{name}_write").replace("_dashboards", f"_{name}_dash"))

    return settings.model_copy(
        update={
            "namespace": f"{settings.namespace}{name}",
            "write_database_url": database(settings.write_database_url),
            "dashboards_database_url": database(settings.dashboards_database_url),
            "chdb_path": tmp_path / f"chdb-{name}",
            "api_port": sandbox.free_port(),
        }
        | update
    )


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 15.0, what: str = "condition", seen: object = None
) -> None:
    """Wait on a condition with a deadline (never a bare sleep); ``seen``, what the check last saw, is printed when
    the deadline passes."""
    deadline = time.monotonic() + timeout
    pause = 0.01
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s" + (f"; last seen: {seen}" if seen else ""))
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.2)


#: An analyst's query that runs until the time limit stops it: 10^12 products on one thread.
SLOW_SQL = (
    "SELECT sum(a * b * c * d) FROM (SELECT arrayJoin(range(1000)) AS a) AS w "
    "CROSS JOIN (SELECT arrayJoin(range(1000)) AS b) AS x CROSS JOIN (SELECT arrayJoin(range(1000)) AS c) AS y "
    "CROSS JOIN (SELECT arrayJoin(range(1000)) AS d) AS z"
)


def quantile(samples: list[float], q: float) -> float:
    """The sample at fraction ``q`` of the sorted samples (nearest rank)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def p99(samples: list[float]) -> float:
    return quantile(samples, 0.99)


async def count_rows(engine, table: str, tenant: str) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(text(f"SELECT count(*) FROM {table} WHERE tenant_id = :t"), {"t": tenant})).scalar()


os.environ.setdefault("PRISM_ENV", "development")

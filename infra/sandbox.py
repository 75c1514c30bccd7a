"""A private, empty Prism environment on the local services: its own databases, Redis databases and namespace.

The tests and ``prism bench`` each run in one, so neither touches the demo's data.
"""

from __future__ import annotations

import asyncio
import socket
import time

import asyncpg
from redis.asyncio import Redis

from infra import bootstrap
from infra.settings import Settings
from projections.layouts.order_summaries import is_cluster
from write.migrate import upgrade


def free_port() -> int:
    """A local TCP port nothing listens on now, for a ``prism serve`` of the sandbox."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sibling(url: str, last: str) -> str:
    """``url`` with its last path part (database name or number) replaced."""
    return url.rsplit("/", 1)[0] + "/" + last


async def recreate_database(url: str) -> None:
    await _on_server(url, 'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', 'CREATE DATABASE "{name}"')


async def drop_database(url: str, timeout: float = 60.0) -> None:
    """Drop, closing its connections; an autovacuum worker in it (which only a superuser may end) is waited out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await _on_server(url, 'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except asyncpg.InsufficientPrivilegeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _on_server(url: str, *statements: str) -> None:
    """Statements about the database of ``url`` (``{name}``), run from the server's ``postgres`` database."""
    admin = sibling(bootstrap.asyncpg_dsn(url), "postgres")
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(admin)
    try:
        for statement in statements:
            await conn.execute(statement.format(name=name))
    finally:
        await conn.close()


async def reset(settings: Settings, beside: bool = False) -> None:
    """Empty databases with the write schema migrated, empty Redis databases, no indexes or tables of the namespace.
    ``beside`` another sandbox in this process, which shares its Redis databases: only this namespace's keys go, and
    its embedded ClickHouse (one per process, at a path of its own) is left to the process that will open it."""
    await recreate_database(settings.write_database_url)
    await recreate_database(settings.dashboards_database_url)
    await asyncio.to_thread(upgrade, settings.write_database_url)
    await _empty_stores(settings, clickhouse=not beside, whole_redis=not beside)


async def clear(settings: Settings) -> None:
    """What the sandbox left on the shared services gone: its databases, Redis databases and indexes (a Redis
    left with a bench's million keys takes longer to load at its next start than its health check waits)."""
    await drop_database(settings.write_database_url)
    await drop_database(settings.dashboards_database_url)
    await _empty_stores(settings, clickhouse=False)


async def _empty_stores(settings: Settings, clickhouse: bool, whole_redis: bool = True) -> None:
    only = ("redis", "elasticsearch", "clickhouse") if clickhouse else ("redis", "elasticsearch")
    stores = await bootstrap.open_stores(settings, only=only)
    try:
        broker_redis = Redis.from_url(settings.broker_url)
        for redis in (stores.redis, broker_redis):
            if whole_redis and not is_cluster(redis):  # a cluster has one database, which other sandboxes share
                await redis.flushdb()
                continue
            for pattern in (f"{settings.namespace}:*", f"{settings.namespace}-*", f"{{{settings.namespace}:*"):
                async for key in redis.scan_iter(match=pattern, count=1000):
                    await redis.unlink(key)
        await broker_redis.aclose()
        await stores.elasticsearch.indices.delete(
            index=f"{settings.namespace}*", ignore_unavailable=True, allow_no_indices=True, expand_wildcards="all"
        )
        if clickhouse:
            await asyncio.to_thread(stores.clickhouse.command, f"DROP DATABASE IF EXISTS {settings.namespace}")
    finally:
        await bootstrap.close_stores(stores)

"""Composition root: turns settings into engines, clients, projections, a bus and a broker."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from infra.settings import Settings
from projections.base import Projection
from projections.registry import PROJECTIONS
from projections.stores.clickhouse import ReadPool
from projections.stores.clickhouse import connect as connect_clickhouse
from projections.stores.clients import Stores
from workers import versions
from workers.broker import declare_actors, make_broker
from workers.catch_up import Policy
from workers.notices import Notices
from workers.runner import ProjectionRunner, Resources
from workers.versions import LIVE, NEXT
from write import event_log


def write_engine(settings: Settings, pool_size: int | None = None) -> AsyncEngine:
    """The write database; its JSON (event payloads read back from the log) through orjson. ``pool_size`` for a
    short-lived tool's few connections; without it, a serving process's kept pool (``pool``)."""
    return create_async_engine(
        settings.write_database_url,
        **pool(settings, pool_size),
        pool_pre_ping=True,
        json_serializer=event_log.dumps,
        json_deserializer=orjson.loads,
    )


def pool(settings: Settings, size: int | None = None) -> dict:
    """A serving process keeps every connection it opens: one closed because a burst overflowed the pool costs the
    next opening a Postgres login, whose SCRAM exchange takes ~40 ms of this process's CPU (asyncpg, measured), paid
    under the very load that overflowed it. Past the pool, requests wait for a connection instead."""
    if size is None:
        return {
            "pool_size": settings.database_pool_size,
            "max_overflow": 0,
            "pool_timeout": settings.pool_timeout_seconds,
        }
    return {"pool_size": size, "max_overflow": 20, "pool_timeout": settings.pool_timeout_seconds}


def asyncpg_dsn(url: str) -> str:
    """asyncpg's own DSN for a SQLAlchemy URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def listen_dsn(settings: Settings) -> str:
    """The DSN for LISTEN on the write database."""
    return asyncpg_dsn(settings.write_database_url)


#: The read stores, as ``Stores`` names them.
STORES = ("redis", "elasticsearch", "clickhouse", "dashboards")


async def open_stores(settings: Settings, only: Collection[str] | None = None) -> Stores:
    """Clients of the read stores (``only`` these, if given); call on the event loop that will use them.

    An API process beside the embedded engine's owner (``clickhouse_owner_socket``)
    opens no ClickHouse client: the engine allows one process, and that one answers.
    """
    wanted = set(STORES if only is None else only)
    if settings.clickhouse_owner_socket:
        wanted.discard("clickhouse")
    stores = Stores(namespace=settings.namespace, **{name: _OPEN[name](settings) for name in wanted})
    if stores.clickhouse is not None:
        stores.clickhouse_reads = ReadPool(lambda: _clickhouse(settings), settings.clickhouse_read_connections)
    return stores


def _clickhouse(settings: Settings) -> Any:
    return connect_clickhouse(settings.clickhouse_url, settings.chdb_path)


def _redis(settings: Settings) -> Any:
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    # A restarted Redis leaves dead pooled connections: retry a command on a fresh one.
    return Redis.from_url(
        settings.redis_url,
        max_connections=64,
        retry=Retry(ExponentialBackoff(), 3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


def _elasticsearch(settings: Settings) -> Any:
    from elasticsearch import AsyncElasticsearch
    from elasticsearch.serializer import OrjsonSerializer

    return AsyncElasticsearch(
        settings.elasticsearch_url,
        request_timeout=30,
        max_retries=2,
        retry_on_timeout=True,
        serializer=OrjsonSerializer(),
    )


_OPEN: dict[str, Callable[[Settings], Any]] = {
    "redis": _redis,
    "elasticsearch": _elasticsearch,
    "clickhouse": _clickhouse,
    "dashboards": lambda settings: _dashboards(settings),
}


def _dashboards(settings: Settings) -> AsyncEngine:
    # JIT compiles a batch's statements for longer than they run (1.3 s of a 5 s rebuild of 2,000 rows' shown
    # parts), and the readers' one-row lookups never need it.
    return create_async_engine(
        settings.dashboards_database_url,
        **pool(settings),
        pool_pre_ping=True,
        connect_args={"server_settings": {"jit": "off"}},
    )


async def close_stores(stores: Stores) -> None:
    if stores.redis is not None:
        await stores.redis.aclose()
    if stores.elasticsearch is not None:
        await stores.elasticsearch.close()
    if stores.clickhouse_reads is not None:
        stores.clickhouse_reads.close()
    if stores.clickhouse is not None:
        stores.clickhouse.close()
    if stores.dashboards is not None:
        await stores.dashboards.dispose()


def projections(stores: Stores, names: list[str] | None = None) -> dict[str, Projection]:
    """The first version of each projection (tests, and stores that were never rebuilt)."""
    return {name: cls(stores) for name, cls in PROJECTIONS.items() if names is None or name in names}


async def active_projections(
    engine: AsyncEngine, stores: Stores, roles: tuple[str, ...] = (LIVE, NEXT)
) -> dict[str, Projection]:
    """The versions in these roles of every registered projection whose store is open here, by label."""
    found = [
        v
        for v in await versions.listing(engine, list(PROJECTIONS))
        if v.role in roles
        and v.projection in PROJECTIONS
        and getattr(stores, PROJECTIONS[v.projection].store) is not None
    ]
    built = [PROJECTIONS[v.projection](stores, v.version) for v in found]
    return {p.label: p for p in built}


def runner(settings: Settings, names: list[str] | None = None) -> ProjectionRunner:
    """The worker side's resources (the stores of ``names`` only, if given), opened lazily on the worker's loop."""
    needed = None if names is None else {PROJECTIONS[name].store for name in names}

    async def open_resources() -> Resources:
        engine, stores = write_engine(settings, pool_size=5), await open_stores(settings, needed)

        async def close() -> None:
            await close_stores(stores)
            await engine.dispose()

        return Resources(engine, lambda name, version: PROJECTIONS[name](stores, version), close)

    return ProjectionRunner(
        open_resources,
        settings.batch_size,
        policies(settings),
        rebuild_batch_size=settings.rebuild_batch_size,
        gap_seconds=settings.catch_up_gap_ms / 1000,
        gaps={name: ms / 1000 for name, ms in settings.catch_up_gaps_ms.items()},
        notices=Notices(listen_dsn(settings)),
    )


def policies(settings: Settings) -> dict[str, Policy]:
    """Each projection's poison policy: the setting if given, else the projection's own, else halt."""
    return {
        name: Policy(settings.poison_policies.get(name, cls.on_poison), settings.poison_after)
        for name, cls in PROJECTIONS.items()
    }


def broker_and_actors(settings: Settings, projection_runner: ProjectionRunner):
    broker = make_broker(settings.broker_url, settings.namespace, projection_runner)
    actors = declare_actors(
        broker,
        projection_runner,
        list(PROJECTIONS),
        settings.namespace,
        max_retries=settings.max_retries,
        min_backoff=settings.retry_min_backoff_ms,
        max_backoff=settings.retry_max_backoff_ms,
    )
    return broker, actors

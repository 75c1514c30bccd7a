"""Composition root: turns settings into engines, clients, projections, a bus and a broker."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection

import orjson
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from infra.settings import Settings
from projections.base import Projection
from projections.registry import PROJECTIONS
from projections.stores import registry
from projections.stores.clients import Stores
from projections.stores.postgres import connect_args, ping_when_idle
from workers import presence, versions
from workers.broker import declare_actors, make_broker
from workers.catch_up import Policy
from workers.notices import Notices
from workers.runner import ProjectionRunner, Resources
from workers.versions import LIVE, NEXT
from write import event_log, partitions
from write.partitions import Partition

log = logging.getLogger("prism.bootstrap")


def write_engine(
    settings: Settings, pool_size: int | None = None, role: str | None = None, overflow: int = 20
) -> AsyncEngine:
    """The write database; its JSON (event payloads read back from the log) through orjson. ``pool_size`` for a
    short-lived tool's few connections; without it, a serving process's kept pool (``pool``). With ``role``, its
    sessions name this process (``workers.presence``): a worker's, whose locks status names the holder of."""
    arguments = connect_args(settings, settings.store_work_timeout_seconds)
    if role is not None:
        arguments["server_settings"] = presence.session_settings(identity(settings, role))
    engine = create_async_engine(
        settings.write_database_url,
        **pool(settings, pool_size, overflow),
        connect_args=arguments,
        json_serializer=event_log.dumps,
        json_deserializer=orjson.loads,
    )
    return ping_when_idle(engine)


def pool(settings: Settings, size: int | None = None, overflow: int = 20) -> dict:
    """A serving process keeps every connection it opens: one closed because a burst overflowed the pool costs the
    next opening a Postgres login, whose SCRAM exchange takes ~40 ms of this process's CPU (asyncpg, measured), paid
    under the very load that overflowed it. Past the pool, requests wait for a connection instead. The last connection
    back is the next out (LIFO): under light load the same few stay hot and the rest idle, so the idle ping
    (``ping_when_idle``) is paid by the connections that were really idle, not by each in turn."""
    if size is None:
        return {
            "pool_size": settings.database_pool_size,
            "max_overflow": 0,
            "pool_timeout": settings.pool_timeout_seconds,
            "pool_use_lifo": True,
        }
    return {"pool_size": size, "max_overflow": overflow, "pool_timeout": settings.pool_timeout_seconds}


def identity(settings: Settings, role: str) -> str:
    """This process's name in its database sessions, logs and status: its role on its host."""
    return presence.identity(settings.namespace, role, settings.host_name)


def asyncpg_dsn(url: str) -> str:
    """asyncpg's own DSN for a SQLAlchemy URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def listen_dsn(settings: Settings) -> str:
    """The DSN for LISTEN on the write database."""
    return asyncpg_dsn(settings.write_database_url)


async def open_stores(settings: Settings, only: Collection[str] | None = None, deadline: float | None = None) -> Stores:
    """Clients of the read stores (``only`` these, if given); call on the event loop that will use them.

    Each store call gives up after ``deadline`` seconds: the readers' ``store_timeout_seconds`` unless a caller
    doing longer work (a worker's batches, a rebuild) asks for more. An API process beside the embedded engine's
    owner (``clickhouse_owner_socket``) opens no ClickHouse client: the engine allows one process, and that one
    answers.
    """
    return registry.open_stores(
        settings,
        settings.namespace,
        store_names(settings, only),
        deadline,
        clickhouse_reads=settings.clickhouse_read_connections,
    )


def store_names(settings: Settings, only: Collection[str] | None = None) -> set[str]:
    """The stores ``open_stores`` opens in this process: ``only`` these, or all, but ClickHouse beside its owner."""
    wanted = set(registry.NAMES if only is None else only)
    if settings.clickhouse_owner_socket:
        wanted.discard("clickhouse")
    return wanted


async def close_stores(stores: Stores) -> None:
    await registry.close_stores(stores)


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
    built = [
        PROJECTIONS[v.projection](stores, v.version, Partition(i, v.partitions))
        for v in found
        for i in range(v.partitions)
    ]
    return {p.label: p for p in built}


def partitions_of(settings: Settings, name: str) -> int:
    """How many partitions a new version of ``name`` splits into: the setting, but one for a projection the embedded
    ClickHouse stores, whose one owner process applies every partition anyway: each would only add parts to merge."""
    if settings.uses_chdb and PROJECTIONS[name].store == "clickhouse":
        return 1
    return settings.partitions


def runner(settings: Settings, names: list[str] | None = None, builds: bool = False) -> ProjectionRunner:
    """The worker side's resources (the stores of ``names`` only, if given), opened lazily on the worker's loop;
    its sessions name it a worker of those stores (counted towards each one's share of the partitions) or, with
    ``builds``, a builder."""
    needed = None if names is None else {PROJECTIONS[name].store for name in names}
    role = presence.role_of(needed or {PROJECTIONS[name].store for name in PROJECTIONS}, builds)

    async def open_resources() -> Resources:
        # Each partition followed holds its lock's connection and reads the log on another.
        partitions = settings.partitions * len(names or PROJECTIONS)
        engine = write_engine(settings, pool_size=5, role=role, overflow=20 + 2 * partitions)
        if settings.partitions > 1:  # before any catch-up: every worker on every host reads the same layout
            await versions.record_first(engine, {name: partitions_of(settings, name) for name in PROJECTIONS})
        stores = await open_stores(settings, needed, deadline=settings.store_work_timeout_seconds)

        async def close() -> None:
            await close_stores(stores)
            await engine.dispose()

        def make(name: str, version: int, partition: Partition) -> Projection:
            return PROJECTIONS[name](stores, version, partition)

        return Resources(engine, make, close, presence.Workers(engine, settings.namespace))

    return ProjectionRunner(
        open_resources,
        settings.batch_size,
        policies(settings),
        rebuild_batch_size=settings.rebuild_batch_size,
        budgets=budgets(settings),
        notices=Notices(listen_dsn(settings), identity(settings, role)),
    )


def ask_to_apply(engine: AsyncEngine) -> Callable[[str, int], Awaitable[None]]:
    """How readers ask a projection to apply a position now: a notice on the write database, heard by the worker
    that holds the projection (``workers.notices``). Lost, it costs the asker a budget's wait, never an answer."""
    notify = text("SELECT pg_notify(:channel, :payload)")

    async def ask(projection: str, position: int) -> None:
        try:
            async with engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(notify, {"channel": event_log.FLUSH_CHANNEL, "payload": f"{projection}:{position}"})
        except SQLAlchemyError as error:
            log.warning("could not ask %s to apply position %d now: %s", projection, position, error)

    return ask


class ServedLayout:
    """Which partition of each projection's live version holds a tenant, for readers: the live partition counts,
    read from the write database at most once a second. A count read just before a switch costs at most a second
    of answers that say an older position (a partition the new version does not have reads as 0), never a newer."""

    def __init__(self, engine: AsyncEngine, seconds: float = 1.0) -> None:
        self.engine, self.seconds = engine, seconds
        self._counts: dict[str, int] = {}
        self._read_at = float("-inf")
        self._reading = asyncio.Lock()

    async def partition_of(self, projection: str, tenant: str) -> Partition:
        if time.monotonic() - self._read_at >= self.seconds:
            async with self._reading:
                if time.monotonic() - self._read_at >= self.seconds:
                    await self._read()
        return partitions.of(tenant, self._counts.get(projection, 1))

    async def _read(self) -> None:
        try:
            async with self.engine.connect() as conn:
                self._counts = await versions.live_partitions(conn)
        except SQLAlchemyError as error:  # the write database is away: the last counts read stand meanwhile
            log.warning("could not read the projections' partition counts: %s", error)
        self._read_at = time.monotonic()


def budgets(settings: Settings) -> dict[str, float]:
    """Each projection's freshness budget in seconds: the setting if given, else the projection's own."""
    return {name: settings.freshness_ms.get(name, cls.freshness_ms) / 1000 for name, cls in PROJECTIONS.items()}


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

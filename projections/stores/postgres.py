"""The Postgres adapter: the customer dashboards' engine, with a deadline on every statement, and what asyncpg's
and SQLAlchemy's errors mean (for the dashboards here, and for the write database at the HTTP edge)."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
from sqlalchemy import event, text
from sqlalchemy import exc as sa
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.util import await_

from projections.stores.adapter import StoreAdapter, StoreSettings, describe
from write.errors import PrismError, StoreBusy

#: asyncpg's errors of a server that is down, restarting, full or cancelled a statement past its timeout.
UNAVAILABLE = (
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.QueryCanceledError,
)


class PostgresAdapter(StoreAdapter):
    """A Postgres database reached through SQLAlchemy on asyncpg: the dashboards, or (``name``) the write model."""

    errors = (OSError, sa.SQLAlchemyError, asyncpg.PostgresError, asyncpg.exceptions.InterfaceError)

    def __init__(self, name: str) -> None:
        self.name = name

    def open(self, settings: StoreSettings, deadline: float) -> Any:
        return self.open_url(settings.dashboards_database_url, settings, deadline)

    def open_url(self, url: str, settings: StoreSettings, deadline: float) -> Any:
        """An engine on ``url`` (the dashboards, or their replica) with the store's limits."""
        # JIT compiles a batch's statements for longer than they run (1.3 s of a 5 s rebuild of 2,000 rows' shown
        # parts), and the readers' one-row lookups never need it. A serving process keeps its connections (see
        # ``infra.bootstrap.pool``); the pool's wait is bounded like any call.
        engine = create_async_engine(
            url,
            pool_size=settings.database_pool_size,
            max_overflow=0,
            pool_timeout=min(settings.pool_timeout_seconds, deadline),
            pool_use_lifo=True,  # hot connections reused, idle ones pinged (see ``infra.bootstrap.pool``)
            connect_args=connect_args(settings, deadline) | {"server_settings": {"jit": "off"} | KEEPALIVES},
        )
        return ping_when_idle(engine)

    async def close(self, client: Any) -> None:
        await client.dispose()

    async def ping(self, client: Any) -> None:
        async with client.connect() as conn:
            await conn.execute(text("SELECT 1"))

    def recognize(self, error: BaseException) -> PrismError | None:
        if isinstance(error, sa.TimeoutError):  # every pooled connection busy for the pool's timeout
            return StoreBusy(self.name, "no free connection in time")
        if isinstance(error, sa.DBAPIError):
            if error.connection_invalidated:
                return self.unavailable(describe(error.orig or error))
            return None  # the cause (asyncpg's error, below in the chain) decides
        if isinstance(error, UNAVAILABLE):
            return self.unavailable(describe(error))
        if isinstance(error, sa.DisconnectionError):
            return self.unavailable(describe(error))
        if isinstance(error, asyncpg.PostgresError):
            return self.rejected(describe(error))
        if isinstance(error, asyncpg.exceptions.InterfaceError) and "closed" in str(error):
            return self.unavailable(describe(error))  # a statement sent on a connection the server dropped
        return None


#: A kept connection idle in the pool for longer than this is pinged before it is handed out.
IDLE_PING_SECONDS = 1.0


def ping_when_idle(engine: AsyncEngine, idle_seconds: float = IDLE_PING_SECONDS) -> AsyncEngine:
    """Ping a pooled connection before use only when it sat idle for ``idle_seconds``; a dead one is replaced.

    SQLAlchemy's ``pool_pre_ping`` pings at every checkout, and on asyncpg its ping is three round trips (BEGIN,
    ``;``, ROLLBACK): under load that was more round trips than a one-row read, on every request. A connection
    back in the pool a moment ago was alive then; one kept across a quiet spell (when a server restart happens
    unseen) is checked with one round trip. A server that goes away under traffic fails the statement at hand,
    which the adapter answers as the store being unavailable (503), and the pool then drops that connection.
    """

    @event.listens_for(engine.sync_engine, "checkin")
    def _idle_from(_: DBAPIConnection | None, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _ping_if_idle(connection: DBAPIConnection, record: ConnectionPoolEntry, _: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < idle_seconds:
            return
        try:
            # One simple-protocol round trip. Not ";": the server answers an empty query with no command tag,
            # which asyncpg's execute fails on, so every idle connection was replaced by a new login.
            await_(connection.driver_connection.execute("SELECT 1"))
        except Exception as error:  # the pool replaces the connection and checks out another
            raise sa.DisconnectionError(f"a pooled connection was gone: {describe(error)}") from error

    return engine


#: Server-side, for every Prism session: probe an idle client after 5 s, every 2 s, give up after 3 misses;
#: unacknowledged data gives up after 10 s. A cut-off host's sessions go in about 11 s, and with them what they held:
#: a worker's advisory locks, and a batch's open transaction on the dashboards with its row locks (which the next
#: holder of the partition would otherwise wait on, statement after statement, until TCP gives up: hours).
KEEPALIVES = {
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "2",
    "tcp_keepalives_count": "3",
    "tcp_user_timeout": "10000",
}


def connect_args(settings: StoreSettings, deadline: float) -> dict[str, Any]:
    """asyncpg's deadlines: to connect (a hung server accepts TCP and never answers) and for each statement."""
    return {"timeout": min(deadline, settings.store_timeout_seconds), "command_timeout": deadline}


DASHBOARDS = PostgresAdapter("dashboards")
#: The write model's database: commands and credentials; its engine is opened by ``infra.bootstrap``.
WRITE_DATABASE = PostgresAdapter("write database")

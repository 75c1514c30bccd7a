"""The Postgres adapter: the customer dashboards' engine, with a deadline on every statement, and what asyncpg's
and SQLAlchemy's errors mean (for the dashboards here, and for the write database at the HTTP edge)."""

from __future__ import annotations

from typing import Any

import asyncpg
from sqlalchemy import exc as sa
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

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
        # JIT compiles a batch's statements for longer than they run (1.3 s of a 5 s rebuild of 2,000 rows' shown
        # parts), and the readers' one-row lookups never need it. A serving process keeps its connections (see
        # ``infra.bootstrap.pool``); the pool's wait is bounded like any call.
        return create_async_engine(
            settings.dashboards_database_url,
            pool_size=settings.database_pool_size,
            max_overflow=0,
            pool_timeout=min(settings.pool_timeout_seconds, deadline),
            pool_pre_ping=True,
            connect_args=connect_args(settings, deadline) | {"server_settings": {"jit": "off"}},
        )

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
        return None


def connect_args(settings: StoreSettings, deadline: float) -> dict[str, Any]:
    """asyncpg's deadlines: to connect (a hung server accepts TCP and never answers) and for each statement."""
    return {"timeout": min(deadline, settings.store_timeout_seconds), "command_timeout": deadline}


DASHBOARDS = PostgresAdapter("dashboards")
#: The write model's database: commands and credentials; its engine is opened by ``infra.bootstrap``.
WRITE_DATABASE = PostgresAdapter("write database")

"""Which failures are worth waiting out, and which mark an event as poison."""

from __future__ import annotations

import asyncpg
import elasticsearch
import redis.exceptions
from clickhouse_connect.driver import exceptions as clickhouse
from sqlalchemy import exc as sa

from projections.base import TransientStoreError

#: A store that is down, restarting or slow: retry with backoff, never blame the event.
TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    ConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    elasticsearch.ConnectionError,
    elasticsearch.ConnectionTimeout,
    clickhouse.OperationalError,
    sa.DisconnectionError,
    sa.InterfaceError,
    TransientStoreError,
)
#: Redis refusing for now: out of memory, busy with a script, loading its data.
_REDIS_BUSY = ("OOM", "BUSY", "LOADING", "TRYAGAIN")
#: ClickHouse overload codes: too many parts, memory limit, too many queries, timeout.
_CLICKHOUSE_BUSY = ("Code: 252.", "Code: 241.", "Code: 202.", "Code: 159.")


def is_transient(error: BaseException) -> bool:
    """True for failures of the store itself; their events are retried, never parked."""
    if isinstance(error, sa.DBAPIError) and (error.connection_invalidated or _transient_cause(error)):
        return True
    if isinstance(error, elasticsearch.ApiError) and error.meta.status in (429, 502, 503, 504):
        return True
    if isinstance(error, redis.exceptions.ResponseError) and str(error).startswith(_REDIS_BUSY):
        return True
    if isinstance(error, clickhouse.DatabaseError) and any(code in str(error) for code in _CLICKHOUSE_BUSY):
        return True
    return isinstance(error, TRANSIENT) or _transient_cause(error)


def _transient_cause(error: BaseException) -> bool:
    cause = error.__cause__ or error.__context__
    return cause is not None and cause is not error and isinstance(cause, TRANSIENT)

"""What the readers of the dashboards database share: its served views read within the store's deadline."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import sqlalchemy as sa

from projections.layouts.postgres_views import query_served
from projections.stores.adapter import within
from projections.stores.clients import Stores
from projections.stores.postgres import DASHBOARDS

T = TypeVar("T")
#: Postgres' code for a relation that does not exist.
UNDEFINED_TABLE = "42P01"


async def bounded(stores: Stores, call: Awaitable[T]) -> T:
    """``call`` on the dashboards database, given up past two of the stores' deadlines: the pool's ping of a kept
    connection, then a new connection."""
    return await within(None if stores.deadline is None else 2 * stores.deadline, "dashboards", call)


async def rows(stores: Stores, sql: str, params: dict[str, Any], behind: list[Any] | None = None) -> list[Any]:
    """The rows of a query on the served views; while a replica has not replayed their set-up, ``behind`` if given
    (the caller waits for a position), else 503."""

    def not_yet(error: BaseException) -> list[Any]:
        if behind is not None:
            return behind
        raise DASHBOARDS.unavailable("the dashboards replica has not replayed the projection's set-up yet") from error

    return await _on_replica(stores, query_served(stores.dashboards_for_reads, sql, params), not_yet)


async def served_checkpoint(stores: Stores, read: Awaitable[int]) -> int:
    """The served checkpoint ``read`` gives; 0 on a replica that has not replayed the projection's set-up yet
    (nothing is applied there so far: a wait for a position goes on)."""
    return await _on_replica(stores, read, lambda _error: 0)


async def _on_replica(stores: Stores, call: Awaitable[T], not_yet: Callable[[BaseException], T]) -> T:
    """``call``'s answer, within the deadline; ``not_yet``'s in its place when a replica lacks a relation."""
    try:
        return await bounded(stores, call)
    except (sa.exc.DBAPIError, asyncpg.PostgresError) as error:
        if not _replica_behind(stores, error):
            raise
        return not_yet(error)


def _replica_behind(stores: Stores, error: BaseException) -> bool:
    """A relation missing on the replica: created on the primary, not replayed here yet."""
    code = getattr(error, "sqlstate", None) or getattr(getattr(error, "orig", None), "sqlstate", None)
    return stores.dashboards_reads is not None and code == UNDEFINED_TABLE

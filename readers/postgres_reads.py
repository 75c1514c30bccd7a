"""What the readers of the dashboards database share: its served views read within the store's deadline."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

from projections.layouts.postgres_views import query_served
from projections.stores.adapter import within
from projections.stores.clients import Stores

T = TypeVar("T")


async def bounded(stores: Stores, call: Awaitable[T]) -> T:
    """``call`` on the dashboards database, given up past two of the stores' deadlines: the pool's ping of a kept
    connection, then a new connection."""
    return await within(None if stores.deadline is None else 2 * stores.deadline, "dashboards", call)


async def rows(stores: Stores, sql: str, params: dict[str, Any]) -> list[Any]:
    """The rows of a query on the served views."""
    return await bounded(stores, query_served(stores.dashboards, sql, params))

"""What every store adapter does: open and close its client, ping it, and turn its driver's errors into Prism's.

Only the adapters (one module per store beside this one) name a driver's exception types or codes; workers and
readers decide on ``isinstance`` of ``StoreUnavailable``/``StoreRejected``.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from write.errors import PrismError, StoreRejected, StoreUnavailable


class StoreSettings(Protocol):
    """The settings an adapter reads (``infra.settings.Settings`` has them all)."""

    redis_url: str
    redis_cluster_nodes: str
    elasticsearch_url: str
    elasticsearch_shards: int
    elasticsearch_replicas: int
    clickhouse_url: str
    clickhouse_cluster: str
    chdb_path: Path
    dashboards_database_url: str
    database_pool_size: int
    pool_timeout_seconds: float
    store_timeout_seconds: float
    store_work_timeout_seconds: float

    @property
    def dashboards_reads_at(self) -> str: ...


class StoreAdapter(ABC):
    """One read store: how to open, close and ping its client, and what its driver's failures mean."""

    #: The store's name: a field of ``Stores``, a key of ``/ready``'s answer, the ``store`` of its projections.
    name: str
    #: The base types of the driver's failures, beside ``OSError`` (refused, reset, timed out) that any may raise.
    errors: tuple[type[Exception], ...] = (OSError,)

    @abstractmethod
    def open(self, settings: StoreSettings, deadline: float) -> Any:
        """A client whose every call gives up after ``deadline`` seconds (connection and answer)."""

    @abstractmethod
    async def close(self, client: Any) -> None:
        """Release the client's connections."""

    @abstractmethod
    async def ping(self, client: Any) -> None:
        """Raise unless the store answers now."""

    @abstractmethod
    def recognize(self, error: BaseException) -> PrismError | None:
        """Prism's error for one of this driver's failures, or None if it is not one this adapter knows."""

    def translate(self, error: BaseException) -> PrismError | None:
        """Prism's error for ``error`` or the first failure that caused it; None if nothing in the chain is known.

        A connection refused, reset or timed out (``OSError``, ``TimeoutError``) while this store was being used
        is this store's failure, whichever library raised it.
        """
        seen: set[int] = set()
        current: BaseException | None = error
        while current is not None and id(current) not in seen:
            if isinstance(current, PrismError):
                return current
            found = self.recognize(current)
            if found is None and isinstance(current, (OSError, TimeoutError)):
                found = self.unavailable(describe(current))
            if found is not None:
                return found
            seen.add(id(current))
            current = current.__cause__ or current.__context__
        return None

    def unavailable(self, reason: str, retry_after: int = 1) -> StoreUnavailable:
        return StoreUnavailable(self.name, reason, retry_after)

    def rejected(self, reason: str) -> StoreRejected:
        return StoreRejected(self.name, reason)


T = TypeVar("T")


async def within(deadline: float | None, store: str, call: Awaitable[T]) -> T:
    """``call``, given up after ``deadline`` seconds as ``store`` being unavailable (None: no bound).

    For a driver whose own deadlines can be outlived: asyncpg gives up a statement on a hung server at its
    ``command_timeout``, then waits without limit for that statement's cancellation before the connection's next.
    """
    if deadline is None:
        return await call
    try:
        async with asyncio.timeout(deadline):
            return await call
    except TimeoutError:
        raise StoreUnavailable(store, f"no answer within {deadline:g} s") from None


def describe(error: BaseException) -> str:
    """One line about a failure: its type and the first line of its message."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__

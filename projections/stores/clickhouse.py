"""The ClickHouse adapter: one way to reach it (a server over HTTP, or the embedded chDB engine on a local path),
with a deadline on a server's every call, and what clickhouse-connect's errors mean.

The driver is imported on first use (``open``, ``errors``), not with this module: a process with no ClickHouse work
(the API processes, which forward analytics to the engine's owner, the other stores' workers, serve's supervisor)
never loads it.
"""

from __future__ import annotations

import asyncio
import re
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from projections.stores.adapter import StoreAdapter, StoreSettings, describe
from projections.stores.embedded_writes import EMBEDDED_WRITES
from write.errors import PrismError, StoreUnavailable

#: ClickHouse error codes that mean "not now": too many parts (inserts faster than merges), memory limit, too many
#: simultaneous queries, a timeout.
BUSY_CODES = frozenset({252, 241, 202, 159})
#: chDB raises without the code attribute a server's answer carries; its message starts with ``Code: N.``.
_CODE = re.compile(r"\bCode:\s*(\d+)")


class EmbeddedEngineBusy(StoreUnavailable):
    """Raised when another process holds the embedded engine's data path (chDB allows one process per path)."""

    def __init__(self, message: str) -> None:
        super().__init__("clickhouse", "its data path is held by another process")
        self.message = message
        self.args = (message,)


def connect(
    url: str,
    chdb_path: Path | str,
    settings: dict[str, Any] | None = None,
    database: str | None = None,
    deadline: float | None = None,
    **credentials: str,
) -> Any:
    """A clickhouse-connect client; chDB when ``url`` is empty (one data path per process).

    A server's client gives up after ``deadline`` seconds (to connect, and between the bytes of an answer); the
    embedded engine runs in this process, and the process that forwards to it bounds the wait instead.
    """
    import clickhouse_connect
    from clickhouse_connect.driver.exceptions import ProgrammingError

    extra: dict[str, Any] = {"database": database} if database else {}
    if url:
        if deadline is not None:
            extra |= {"connect_timeout": min(deadline, 10), "send_receive_timeout": deadline}
        return clickhouse_connect.get_client(dsn=url, settings=settings or {}, **(extra | credentials))
    Path(chdb_path).mkdir(parents=True, exist_ok=True)
    try:
        client = clickhouse_connect.get_client(interface="chdb", path=str(chdb_path), settings=settings or {}, **extra)
    except ProgrammingError as error:
        raise EmbeddedEngineBusy(
            f"the embedded ClickHouse engine at {chdb_path} is in use by another process (a running `prism serve`?). "
            "Ask that process over HTTP (GET /projections, POST /audit, /deadletters), stop it first, or set "
            f"PRISM_CLICKHOUSE_URL to a ClickHouse server. ({error})"
        ) from error
    EMBEDDED_WRITES.opened = True
    EMBEDDED_WRITES.moved()  # another process may have written while this one had the engine closed
    return EmbeddedClient(client)


#: Statements that change nothing: any other counts as a write.
_READ_ONLY = re.compile(r"\s*(SELECT|WITH|EXISTS|SHOW|DESCRIBE|DESC|EXPLAIN)\b", re.IGNORECASE)


class EmbeddedClient:
    """A chDB client whose writes move ``EMBEDDED_WRITES`` once they return; the rest is the client's."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def command(self, cmd: str, *args: Any, **kwargs: Any) -> Any:
        return self._counted(self._client.command, cmd, *args, **kwargs)

    def query(self, query: str | None = None, *args: Any, **kwargs: Any) -> Any:
        return self._counted(self._client.query, query, *args, **kwargs)

    def raw_query(self, query: str, *args: Any, **kwargs: Any) -> Any:
        return self._counted(self._client.raw_query, query, *args, **kwargs)

    def close(self) -> None:
        try:
            self._client.close()
        finally:
            EMBEDDED_WRITES.moved()  # until it is opened again, another process may write

    def insert(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._client.insert(*args, **kwargs)
        finally:
            EMBEDDED_WRITES.moved()

    @staticmethod
    def _counted(call: Callable[..., Any], statement: str | None, *args: Any, **kwargs: Any) -> Any:
        try:
            return call(statement, *args, **kwargs)
        finally:
            if statement is None or not _READ_ONLY.match(statement):
                EMBEDDED_WRITES.moved()


class ReadPool:
    """Kept clients for readers' queries, one per thread of the pool's own.

    A client's engine handle (or HTTP session) runs one query at a time, and the projection's client is busy with
    its batches: readers that shared it would queue behind each other and behind the inserts. Each thread here opens
    its client on first use and keeps it; readers' queries set nothing on it, so one cannot change the next.
    """

    def __init__(self, open_client: Callable[[], Any], size: int) -> None:
        self._open_client, self._local, self._lock = open_client, threading.local(), threading.Lock()
        self._clients: list[Any] = []
        self._executor = ThreadPoolExecutor(size, thread_name_prefix="prism-clickhouse-read")

    async def query(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._query, sql, parameters)

    def _query(self, sql: str, parameters: dict[str, Any] | None) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._open_client()
            with self._lock:
                self._clients.append(client)
        return client.query(sql, parameters=parameters)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        for client in self._clients:
            client.close()


class ClickHouseAdapter(StoreAdapter):
    """ClickHouse, holding the order analytics: a server, or the embedded engine in its owner process."""

    name = "clickhouse"

    @property
    def errors(self) -> tuple[type[Exception], ...]:  # type: ignore[override]  # the driver's type, loaded on use
        from clickhouse_connect.driver import exceptions

        return (OSError, exceptions.ClickHouseError)

    def open(self, settings: StoreSettings, deadline: float) -> Any:
        return connect(settings.clickhouse_url, settings.chdb_path, deadline=deadline)

    def open_reads(self, settings: StoreSettings, size: int) -> ReadPool:
        """The readers' kept clients, on the readers' deadline."""
        deadline = settings.store_timeout_seconds
        return ReadPool(lambda: connect(settings.clickhouse_url, settings.chdb_path, deadline=deadline), size)

    async def close(self, client: Any) -> None:
        client.close()

    async def ping(self, client: Any) -> None:
        await asyncio.to_thread(client.command, "SELECT 1")

    def recognize(self, error: BaseException) -> PrismError | None:
        if "clickhouse_connect" not in sys.modules:  # the driver was never loaded here: the error is not its
            return None
        from clickhouse_connect.driver import exceptions

        if not isinstance(error, exceptions.ClickHouseError):
            return None
        code = error_code(error)
        if code in BUSY_CODES:
            return self.unavailable(f"code {code}: {describe(error)}")
        if isinstance(error, exceptions.OperationalError) and code is None:  # no answer: refused, reset, timed out
            return self.unavailable(describe(error))
        return self.rejected(describe(error))


def error_code(error: BaseException) -> int | None:
    """ClickHouse's error code: the driver's attribute (a server's answer header), else the ``Code: N.`` chDB
    prints first in its message."""
    code = getattr(error, "code", None)
    if code is None:
        found = _CODE.search(str(error))
        code = int(found.group(1)) if found else None
    return code


CLICKHOUSE = ClickHouseAdapter()

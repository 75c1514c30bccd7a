"""One way to reach ClickHouse: a server over HTTP, or the embedded chDB engine on a local path."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.exceptions import ProgrammingError


class EmbeddedEngineBusy(Exception):
    """Raised when another process holds the embedded engine's data path (chDB allows one process per path)."""


def connect(
    url: str, chdb_path: Path | str, settings: dict[str, Any] | None = None, database: str | None = None
) -> Any:
    """A clickhouse-connect client; chDB when ``url`` is empty (one data path per process)."""
    extra = {"database": database} if database else {}
    if url:
        return clickhouse_connect.get_client(dsn=url, settings=settings or {}, **extra)
    Path(chdb_path).mkdir(parents=True, exist_ok=True)
    try:
        return clickhouse_connect.get_client(interface="chdb", path=str(chdb_path), settings=settings or {}, **extra)
    except ProgrammingError as error:
        raise EmbeddedEngineBusy(
            f"the embedded ClickHouse engine at {chdb_path} is in use by another process (a running `prism serve`?). "
            "Ask that process over HTTP (GET /projections, POST /audit, /deadletters), stop it first, or set "
            f"PRISM_CLICKHOUSE_URL to a ClickHouse server. ({error})"
        ) from error


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

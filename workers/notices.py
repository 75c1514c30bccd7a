"""Commit notices for a worker: the log's head as the write side announces it, awaited without polling.

The log notifies every append with its last position (``event_log.NOTIFY_CHANNEL``).
A worker that holds a projection's lock listens on one connection of its own and
applies the next batch as soon as a commit past its checkpoint is announced. A lost
notice, or a lost connection, costs latency only: the wait has a deadline, and the
relay's messages still come.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

from projections.stores.adapter import describe
from projections.stores.postgres import WRITE_DATABASE
from write import event_log

log = logging.getLogger("prism.notices")


class Notices:
    def __init__(self, listen_dsn: str) -> None:
        self.listen_dsn = listen_dsn
        self.head = 0
        self._moved = asyncio.Event()
        self._connection: asyncpg.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stopped = False

    async def wait_past(self, position: int, timeout: float) -> bool:
        """True once a commit past ``position`` is announced, False at the timeout (or with no connection)."""
        if self.stopped or not await self.listening():
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.head <= position:
            if self.stopped:
                return False
            self._moved.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._moved.wait(), remaining)
            except TimeoutError:
                return self.head > position
        return True

    async def listening(self) -> bool:
        """Listen if not yet (or again after a lost connection); False when the database is away."""
        if self._connection is not None and not self._connection.is_closed():
            return True
        self._loop = asyncio.get_running_loop()
        try:
            self._connection = await asyncpg.connect(self.listen_dsn)
            await self._connection.add_listener(event_log.NOTIFY_CHANNEL, self._notified)
        except WRITE_DATABASE.errors as error:
            log.warning("commit notices unavailable (%s); catching up on messages only", describe(error))
            self._connection = None
            return False
        return True

    def _notified(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self.head = max(self.head, int(payload or 0))
        self._moved.set()

    def stop(self) -> None:
        """End every wait now and each later one at once, so a worker that stops never waits out a follow; callable
        from any thread."""
        self.stopped = True
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._moved.set)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

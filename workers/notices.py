"""Commit notices for a worker: the log's head as the write side announces it, awaited without polling.

The log notifies every append with its position and its tenant's bucket (``event_log.NOTIFY_CHANNEL``), so a
worker that holds one partition of a projection wakes for its own tenants' commits only.
A worker that holds a projection's lock listens on one connection of its own and
applies the next batch as soon as a commit past its checkpoint is announced. A lost
notice, or a lost connection, costs latency only: the wait has a deadline, and the
relay's messages still come.

On the same connection it hears readers ask for a projection to write now
(``event_log.FLUSH_CHANNEL``): a worker gathering commits for a freshness budget
stops gathering once a reader waits for a position past its checkpoint (``gather``),
so read-your-writes never waits out a budget, and only those who ask pay for it. And
it hears operations waiting for a projection's lock ask its holder to step aside
(``locks.STEP_ASIDE_CHANNEL``), so a follower need not ask the database after each batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import asyncpg

from projections.stores.adapter import describe
from projections.stores.postgres import WRITE_DATABASE
from workers import presence
from workers.locks import STEP_ASIDE_CHANNEL
from write import event_log
from write.partitions import BUCKETS, SEPARATOR, WHOLE, Partition

#: How long an operation's ask to step aside stands: it repeats the ask every ~50 ms while it waits.
ASIDE_SECONDS = 0.5

log = logging.getLogger("prism.notices")


class Notices:
    def __init__(self, listen_dsn: str, identity: str | None = None) -> None:
        self.listen_dsn = listen_dsn
        #: The session's name (``workers.presence``): this connection lasts as long as the worker, and counts it.
        self.identity = identity
        self.head = 0
        #: The last position announced in each bucket, and the last announced without one (which wakes every bucket).
        self._heads = [0] * BUCKETS
        self._unplaced = 0
        self._moved = asyncio.Event()
        #: Per projection, the highest position a reader asked it to apply now.
        self.wanted: dict[str, int] = {}
        self._asked = asyncio.Event()
        self._aside: dict[str, float] = {}
        self._connection: asyncpg.Connection | None = None
        self._connecting: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stopped = False

    def newest(self, partition: Partition = WHOLE) -> int:
        """The last commit announced for the partition's tenants."""
        if partition.whole:
            return self.head
        low, high = partition.buckets
        return max(self._unplaced, max(self._heads[low:high]))

    def wanted_of(self, key: str) -> int:
        """The highest position readers asked a partition (``name/2of4``) to apply now, or its whole projection."""
        name = key.split(SEPARATOR, 1)[0]
        return max(self.wanted.get(key, 0), self.wanted.get(name, 0))

    async def wait_past(
        self, position: int, timeout: float, partition: Partition = WHOLE, key: str = "", holder: str = ""
    ) -> bool:
        """True once a commit past ``position`` is announced for the partition's tenants (or a reader asks ``key``
        for a position past it); False at the timeout, with no connection, or once an operation waiting for the
        lock of ``holder`` (a projection's label) asks it to step aside: an idle follower lets the lock go at once
        rather than at the end of its follow."""
        if self.stopped or not await self.listening():
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.newest(partition) <= position and not (key and self.wanted_of(key) > position):
            if self.stopped or (holder and self.aside_asked(holder)):
                return False
            self._moved.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._moved.wait(), remaining)
            except TimeoutError:
                return self.newest(partition) > position
        return True

    async def gather(self, key: str, position: int, seconds: float) -> bool:
        """Wait ``seconds`` for more commits to write together, unless a reader waits for a position past
        ``position`` (or asks during the wait); True when a reader cut it short."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while self.wanted_of(key) <= position:
            remaining = deadline - loop.time()
            if remaining <= 0 or self.stopped:
                return False
            self._asked.clear()
            try:
                await asyncio.wait_for(self._asked.wait(), remaining)
            except TimeoutError:
                return self.wanted_of(key) > position
        return True

    async def asked(self, key: str, position: int) -> None:
        """Return once a reader waits for ``key`` (a projection, or a partition of it) to apply a position past
        ``position``."""
        while self.wanted_of(key) <= position and not self.stopped:
            self._asked.clear()
            await self._asked.wait()

    @property
    def hearing(self) -> bool:
        """Whether notices are being heard now (a lost connection is listened again by the next wait)."""
        return self._connection is not None and not self._connection.is_closed()

    def aside_asked(self, label: str) -> bool:
        """Whether an operation waiting for ``label``'s lock asked its holder to let it go, lately."""
        return time.monotonic() - self._aside.get(label, float("-inf")) < ASIDE_SECONDS

    async def listening(self) -> bool:
        """Listen if not yet (or again after a lost connection); False when the database is away. The followers of
        several partitions ask at once: one of them connects, the others wait for it."""
        if self.hearing:
            return True
        self._loop = asyncio.get_running_loop()
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            return self.hearing or await self._listen()

    async def _listen(self) -> bool:
        settings = presence.session_settings(self.identity) if self.identity else None
        try:
            connection = await asyncpg.connect(self.listen_dsn, server_settings=settings)
            await connection.add_listener(event_log.NOTIFY_CHANNEL, self._notified)
            await connection.add_listener(event_log.FLUSH_CHANNEL, self._flush_asked)
            await connection.add_listener(STEP_ASIDE_CHANNEL, self._aside_asked)
        except WRITE_DATABASE.errors as error:
            log.warning("commit notices unavailable (%s); catching up on messages only", describe(error))
            self._connection = None
            return False
        self._connection = connection
        return True

    def _notified(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        position, bucket = event_log.notice(payload)
        self.head = max(self.head, position)
        if bucket is None:
            self._unplaced = max(self._unplaced, position)
        else:
            self._heads[bucket] = max(self._heads[bucket], position)
        self._moved.set()

    def _flush_asked(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        name, _, position = payload.rpartition(":")
        if name and position.isdigit():
            self.wanted[name] = max(self.wanted.get(name, 0), int(position))
            self._asked.set()
            self._moved.set()  # a partition with no commit of its own waits in ``wait_past``: it looks again

    def _aside_asked(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self._aside[payload] = time.monotonic()
        self._moved.set()  # a follower waiting for commits looks again, and lets the lock go

    def stop(self) -> None:
        """End every wait now and each later one at once, so a worker that stops never waits out a follow; callable
        from any thread."""
        self.stopped = True
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._moved.set)
            self._loop.call_soon_threadsafe(self._asked.set)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

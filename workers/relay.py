"""The relay: notices new log positions and asks each projection's queue to catch up.

It listens for the log's commit notifications, whose payload is the committed
head, and also ticks on a timer (reading the head from the log), so a lost
notification or message costs latency, never data. Notifications that arrive
while it is sending are coalesced into one round.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from workers import versions
from write import event_log

log = logging.getLogger("prism.relay")
#: Shortest gap between two rounds of messages; bounds the message rate under heavy write load, and is the most
#: a commit waits for its round (a waiting catch-up message already serves it, see ``send_coalesced``).
MIN_ROUND_SECONDS = 0.01


class Relay:
    def __init__(
        self, log_engine: AsyncEngine, listen_dsn: str, send: Callable[[int, dict[str, int]], Any], poll_seconds: float
    ) -> None:
        self.log_engine = log_engine
        self.listen_dsn = listen_dsn
        self.send = send
        self.poll_seconds = poll_seconds
        self.sent_head = -1
        self.noticed = 0
        #: Each projection's live partition count (each partition has messages of its own), read again on each tick.
        self.partitions: dict[str, int] = {}
        self._woken = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop``; a lost database or broker connection is retried, never fatal."""
        pause = MIN_ROUND_SECONDS
        while not stop.is_set():
            try:
                await self._relay(stop)
            except Exception as error:  # noqa: BLE001  # the database or the broker is away: keep trying, with growing pauses
                log.warning("relay: %s: %s; retrying in %.1fs", type(error).__name__, error, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, self.poll_seconds)
            else:
                pause = MIN_ROUND_SECONDS

    async def _relay(self, stop: asyncio.Event) -> None:
        listener = await asyncpg.connect(self.listen_dsn)
        try:
            await listener.add_listener(event_log.NOTIFY_CHANNEL, self._notified)
            await self.round(force=True)  # whatever committed while not listening
            while not stop.is_set():
                if listener.is_closed():
                    raise ConnectionError("the LISTEN connection closed")
                ticked = not await self._wait(stop)
                await self.round(force=ticked, head=None if ticked else self.noticed)
                await asyncio.sleep(MIN_ROUND_SECONDS)
        finally:
            await listener.close()

    def _notified(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self.noticed = max(self.noticed, event_log.notice(payload)[0])
        self._woken.set()

    async def round(self, force: bool = False, head: int | None = None) -> int:
        """Send every partition of every projection the head (read from the log unless given) if it moved, or on a
        tick."""
        if head is None:
            async with self.log_engine.connect() as conn:
                head = await event_log.head(conn)
                self.partitions = await versions.live_partitions(conn)
        if force or head > self.sent_head:
            await asyncio.to_thread(self.send, head, self.partitions)
            self.sent_head = head
        return head

    async def _wait(self, stop: asyncio.Event) -> bool:
        """True when woken by a notification, False on a tick."""
        try:
            await asyncio.wait_for(self._woken.wait(), timeout=self.poll_seconds)
        except TimeoutError:
            return False
        self._woken.clear()
        return not stop.is_set()

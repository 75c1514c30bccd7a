"""The embedded ClickHouse engine's writes made by this process, counted, and reads remembered until the next one
(kept apart from the adapter so that processes without ClickHouse need not import its driver to read it)."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Any


class EmbeddedWrites:
    """The embedded engine's writes made by this process, counted, and reads remembered until the next one.

    chDB opens a data path in one process only, so the process that opened it makes
    every write there is: a value read after the count last moved (a checkpoint) is
    still the answer, and readers that poll it (``/positions``, a read waiting for
    its ``min_position``) need not run a query each time. A query on the engine costs
    milliseconds of CPU; a bench probe polling positions back to back kept half a
    core busy. The count also moves when the engine is opened or closed here (another
    process may write while this one has it closed). A server has other writers:
    nothing is remembered unless this process opened the embedded engine.
    """

    def __init__(self) -> None:
        self.opened = False
        self._count = 0
        self._lock = threading.Lock()
        self._remembered: dict[Any, tuple[int, Any]] = {}

    def moved(self) -> None:
        """Called once a write has returned (or failed: it may have done part of its work)."""
        with self._lock:
            self._count += 1

    async def remembered(self, key: Any, read: Callable[[], Awaitable[Any]]) -> Any:
        """``read()``, or its last answer if no write has returned since that read began."""
        if not self.opened:
            return await read()
        with self._lock:
            seen = self._count
        last = self._remembered.get(key)
        if last is not None and last[0] == seen:
            return last[1]
        value = await read()
        self._remembered[key] = (seen, value)
        return value


EMBEDDED_WRITES = EmbeddedWrites()

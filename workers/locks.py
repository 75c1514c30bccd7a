"""The single-writer lock of each projection.

A session-level advisory lock on the write database: Postgres releases it by itself
if the holder's connection dies, so a killed worker never leaves a projection stuck.
Catch-ups try it once (another consumer is already on the job); operations that
write outside the catch-up loop (repair, dead-letter retry and discard) wait for it.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


def lock_key(projection: str) -> int:
    return int.from_bytes(hashlib.sha256(f"prism:projection:{projection}".encode()).digest()[:8], "big", signed=True)


class ProjectionBusy(Exception):
    """Raised when another consumer kept the projection's lock for longer than the caller would wait."""


@asynccontextmanager
async def projection_lock(log_engine: AsyncEngine, name: str, wait: float = 0.0) -> AsyncIterator[bool]:
    """The projection's single-writer lock; yields False if it was not had within ``wait`` seconds."""
    deadline = time.monotonic() + wait
    async with log_engine.connect() as lock_conn:
        while not (await lock_conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": lock_key(name)})).scalar():
            await lock_conn.commit()
            if time.monotonic() >= deadline:
                yield False
                return
            await asyncio.sleep(0.05)
        await lock_conn.commit()  # the session lock outlives the transaction; no snapshot is held meanwhile
        try:
            yield True
        finally:
            await lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(name)})
            await lock_conn.commit()


@asynccontextmanager
async def exclusively(log_engine: AsyncEngine, name: str, wait: float = 30.0) -> AsyncIterator[None]:
    """Run an operation (repair, retry, discard) as the projection's only writer, or raise ProjectionBusy."""
    async with projection_lock(log_engine, name, wait) as held:
        if not held:
            raise ProjectionBusy(f"projection {name} stayed busy for {wait:.0f}s; try again")
        yield

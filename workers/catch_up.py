"""Catching a projection up with the log: read a batch after its checkpoint, apply it, repeat.

One consumer per projection at a time keeps the log's global order: a session-level
advisory lock on the write database, which Postgres releases by itself if the
holder's connection dies (a killed worker never leaves the projection stuck).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.base import Batch, Projection
from write import event_log

log = logging.getLogger("prism.catch_up")


@dataclass(frozen=True)
class Progress:
    """What one catch-up did; ``skipped`` is True when another consumer held the projection."""

    projection: str
    checkpoint: int
    applied: int = 0
    batches: int = 0
    skipped: bool = False


def lock_key(projection: str) -> int:
    return int.from_bytes(hashlib.sha256(f"prism:projection:{projection}".encode()).digest()[:8], "big", signed=True)


async def catch_up(log_engine: AsyncEngine, projection: Projection, batch_size: int, target: int = 0) -> Progress:
    """Apply every event after the checkpoint, batch by batch, until the head is reached."""
    async with log_engine.connect() as lock_conn:
        got = (await lock_conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": lock_key(projection.name)}))
        if not got.scalar():
            return Progress(projection.name, target, skipped=True)
        await lock_conn.commit()  # the session lock outlives the transaction; no snapshot is held while draining
        try:
            return await _drain(log_engine, projection, batch_size)
        finally:
            await lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(projection.name)})
            await lock_conn.commit()


async def _drain(log_engine: AsyncEngine, projection: Projection, batch_size: int) -> Progress:
    checkpoint = await projection.checkpoint()
    applied = batches = 0
    while True:
        async with log_engine.connect() as conn:
            events = await event_log.read_after(conn, checkpoint, batch_size)
        if not events:
            return Progress(projection.name, checkpoint, applied, batches)
        handled = [ev for ev in events if ev.type in projection.handles]
        started = time.perf_counter()
        await projection.apply(Batch(handled, events[-1].position))
        log.debug("%s applied %d events up to %d in %.3fs", projection.name, len(handled), events[-1].position,
                  time.perf_counter() - started)
        checkpoint, applied, batches = events[-1].position, applied + len(handled), batches + 1

"""Replay rate: each projection rebuilt from position 0 of the seeded log, alone, then all four at once.

Each run writes a version of its own (as ``prism rebuild`` does), so the runs never
see each other's documents. The four-at-once run builds version 1, which stays
served for the reader benchmark; the single-store runs build version 2 and drop it.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy.ext.asyncio import AsyncEngine

from projections.base import Stores
from projections.registry import PROJECTIONS
from workers.catch_up import catch_up
from write import event_log

SERVED, SCRATCH = 1, 2


async def _replay(engine: AsyncEngine, stores: Stores, name: str, version: int, batch_size: int) -> dict:
    projection = PROJECTIONS[name](stores, version)
    await projection.setup()
    started = time.perf_counter()
    progress = await catch_up(engine, projection, batch_size)
    seconds = time.perf_counter() - started
    return {"events": progress.applied, "seconds": round(seconds, 3),
            "events_per_s": round(progress.applied / seconds), "batches": progress.batches}


async def replay_rates(engine: AsyncEngine, stores: Stores, batch_size: int, log=print) -> dict:
    async with engine.connect() as conn:
        head = await event_log.head(conn)
    log(f"  replaying {head:,} events into all four stores at once")
    started = time.perf_counter()
    together = await asyncio.gather(*(_replay(engine, stores, name, SERVED, batch_size) for name in PROJECTIONS))
    wall = time.perf_counter() - started
    result = {"log_events": head, "together": {
        "seconds": round(wall, 3), "events_per_s": round(head / wall),
        "per_store": dict(zip(PROJECTIONS, together))}, "alone": {}}
    for name in PROJECTIONS:
        log(f"  replaying {head:,} events into {name} alone")
        result["alone"][name] = await _replay(engine, stores, name, SCRATCH, batch_size)
        await PROJECTIONS[name](stores, SCRATCH).drop()
    return result

"""Replay rate: each projection rebuilt from position 0 of the seeded log, alone, then all four at once.

Each run writes a version of its own (as ``prism rebuild`` does), so the runs never
see each other's documents. The single-store runs rebuild version 1 from the whole
log, which stays served for the reader benchmark. The four-at-once run builds
version 2 for at most its time budget (it stops after the batch that passes it) and
reports the rate over what the slowest store applied; then version 2 is dropped.
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


async def _replay(engine: AsyncEngine, stores: Stores, name: str, version: int, batch_size: int,
                  budget: float | None) -> dict:
    projection = PROJECTIONS[name](stores, version)
    await projection.setup()
    started = time.perf_counter()
    progress = await catch_up(engine, projection, batch_size, seconds=budget)
    seconds = time.perf_counter() - started
    return {"events": progress.applied, "seconds": round(seconds, 3), "complete": progress.drained,
            "events_per_s": round(progress.applied / seconds), "batches": progress.batches}


async def replay_rates(engine: AsyncEngine, stores: Stores, batch_size: int, together_budget: float,
                       log=print) -> dict:
    async with engine.connect() as conn:
        head = await event_log.head(conn)
    result: dict = {"log_events": head, "alone": {}}
    for name in PROJECTIONS:
        log(f"  replaying {head:,} events into {name} alone")
        result["alone"][name] = await _replay(engine, stores, name, SERVED, batch_size, None)
    log(f"  replaying the same log into all four stores at once (for at most {together_budget:.0f} s)")
    started = time.perf_counter()
    together = await asyncio.gather(*(_replay(engine, stores, name, SCRATCH, batch_size, together_budget)
                                      for name in PROJECTIONS))
    wall = time.perf_counter() - started
    slowest = min(run["events"] for run in together)
    result["together"] = {"seconds": round(wall, 3), "events": slowest, "events_per_s": round(slowest / wall),
                          "complete": slowest == head, "per_store": dict(zip(PROJECTIONS, together))}
    for name in PROJECTIONS:
        await PROJECTIONS[name](stores, SCRATCH).drop()
    return result

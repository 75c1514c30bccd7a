"""Replay rate: each projection rebuilt from position 0 of the seeded log, alone, then all four at once.

Each run writes a version of its own (as ``prism rebuild`` does), so the runs never
see each other's documents. The single-store runs rebuild version 1 from the whole
log, which stays served for the reader benchmark. The four-at-once run builds
version 2 for at most its time budget (it stops after the batch that passes it) and
reports the rate over what the slowest store applied; then version 2 is dropped.

Four at once runs as ``prism serve`` rebuilds: each projection in a process of its
own (``python -m infra.bench.replay``), so that every core works; the embedded
ClickHouse, which one process at a time may open, is rebuilt in this one.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from sqlalchemy.ext.asyncio import AsyncEngine

from infra.batch_gc import tune_for_batches
from infra.settings import Settings
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


async def _replay_in_child(settings: Settings, name: str, version: int, batch_size: int, budget: float) -> dict:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "infra.bench.replay", name, str(version), str(batch_size), str(budget),
        env=settings.child_environment(), stdout=asyncio.subprocess.PIPE)
    out, _ = await child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"the replay of {name} in a child process failed (exit {child.returncode})")
    return json.loads(out.decode().strip().splitlines()[-1])


async def replay_rates(engine: AsyncEngine, stores: Stores, batch_size: int, together_budget: float,
                       log=print, settings: Settings | None = None) -> dict:
    """With ``settings``, the four-at-once run puts each projection in a process of its own."""
    async with engine.connect() as conn:
        head = await event_log.head(conn)
    result: dict = {"log_events": head, "alone": {}}
    for name in PROJECTIONS:
        log(f"  replaying {head:,} events into {name} alone")
        result["alone"][name] = await _replay(engine, stores, name, SERVED, batch_size, None)
    log(f"  replaying the same log into all four stores at once, a process each (for at most {together_budget:.0f} s)")
    started = time.perf_counter()
    together = await asyncio.gather(*(
        _replay(engine, stores, name, SCRATCH, batch_size, together_budget)
        if settings is None or PROJECTIONS[name].store == "clickhouse" and settings.uses_chdb
        else _replay_in_child(settings, name, SCRATCH, batch_size, together_budget) for name in PROJECTIONS))
    wall = time.perf_counter() - started
    slowest = min(run["events"] for run in together)
    result["together"] = {"seconds": round(wall, 3), "events": slowest, "events_per_s": round(slowest / wall),
                          "complete": slowest == head, "per_store": dict(zip(PROJECTIONS, together))}
    for name in PROJECTIONS:
        await PROJECTIONS[name](stores, SCRATCH).drop()
    return result


async def _child(name: str, version: int, batch_size: int, budget: float) -> dict:
    from infra import bootstrap

    tune_for_batches()  # as a worker process of prism serve is
    settings = Settings()
    engine = bootstrap.write_engine(settings, pool_size=2)
    stores = await bootstrap.open_stores(settings, only=(PROJECTIONS[name].store,))
    try:
        return await _replay(engine, stores, name, version, batch_size, budget)
    finally:
        await bootstrap.close_stores(stores)
        await engine.dispose()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_child(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])))))

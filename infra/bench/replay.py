"""Replay rate: the seeded log rebuilt into all projections at once, then into each alone.

All at once builds version 1 from the whole log, the one readers see (the
reader benchmarks read it), and says how long the whole log took. It runs as
``prism serve`` rebuilds: each projection in a process of its own (``python -m
infra.bench.replay``), so that every core works; the embedded ClickHouse, which one
process at a time may open, is rebuilt in this one.

Then each projection alone builds version 2 beside the served one, as ``prism
rebuild`` does, for at most its time budget (it stops after the batch that passes
it), and version 2 is dropped. Rates count the log's events passed (those of types
a projection ignores included) over the wall time.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

from sqlalchemy.ext.asyncio import AsyncEngine

from infra.bench import cost
from infra.bench.environment import bench_databases
from infra.processes.gc_tuning import tune_for_batches
from infra.settings import Settings
from projections.registry import PROJECTIONS
from projections.stores.clients import Stores
from workers.catch_up import catch_up
from write import event_log

SERVED, SCRATCH = 1, 2


async def _replay(
    engine: AsyncEngine, stores: Stores, name: str, version: int, batch_size: int, budget: float | None
) -> dict:
    projection = PROJECTIONS[name](stores, version)
    await projection.setup()
    started = time.perf_counter()
    progress = await catch_up(engine, projection, batch_size, seconds=budget)
    seconds = time.perf_counter() - started
    return {
        "events": progress.passed,
        "applied": progress.applied,
        "seconds": round(seconds, 3),
        "complete": progress.drained,
        "events_per_s": round(progress.passed / seconds),
        "batches": progress.batches,
    }


async def _replay_in_child(settings: Settings, name: str, version: int, batch_size: int, budget: float | None) -> dict:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "infra.bench.replay",
        name,
        str(version),
        str(batch_size),
        str(budget or 0),
        env=settings.child_environment(),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"the replay of {name} in a child process failed (exit {child.returncode})")
    return json.loads(out.decode().strip().splitlines()[-1])


async def replay_rates(
    engine: AsyncEngine,
    stores: Stores,
    batch_size: int,
    alone_budget: float,
    log=print,
    settings: Settings | None = None,
) -> dict:
    """With ``settings``, the all-at-once run puts each projection in a process of its own."""
    async with engine.connect() as conn:
        head = await event_log.head(conn)
    log(f"  replaying {head:,} events into all stores at once, a process each, batches of {batch_size:,}")
    sampler = cost.CpuSampler([os.getpid()], bench_databases(settings) if settings else [])
    async with sampler:
        started = time.perf_counter()
        together = await asyncio.gather(
            *(
                _replay(engine, stores, name, SERVED, batch_size, None)
                if settings is None or (PROJECTIONS[name].store == "clickhouse" and settings.uses_chdb)
                else _replay_in_child(settings, name, SERVED, batch_size, None)
                for name in PROJECTIONS
            )
        )
        wall = time.perf_counter() - started
        used = await sampler.stop()
    result: dict = {
        "log_events": head,
        "batch_size": batch_size,
        "together": {
            "seconds": round(wall, 3),
            "events": head,
            "events_per_s": round(head / wall),
            "complete": all(run["complete"] for run in together),
            "per_store": dict(zip(PROJECTIONS, together, strict=False)),
            "cpu": cost.per_unit(replay_usage(used, dict(zip(PROJECTIONS, together, strict=True))), head),
        },
        "alone": {},
    }
    for name in PROJECTIONS:
        log(f"  replaying the same log into {name} alone, beside the served version (for at most {alone_budget:.0f} s)")
        result["alone"][name] = await _replay(engine, stores, name, SCRATCH, batch_size, alone_budget)
        await PROJECTIONS[name](stores, SCRATCH).drop()
    return result


def replay_usage(used: cost.Usage, runs: dict[str, dict]) -> cost.Usage:
    """The sampled CPU of the replay, each child's replaced by what it reported of itself (sampling misses what a
    process used after its last sample); this process's named as the replays it made."""
    prism = dict(used.prism)
    here = [name for name, run in runs.items() if "cpu_seconds" not in run]
    for name, run in runs.items():
        if "cpu_seconds" in run:
            prism[f"replay {name}"] = run["cpu_seconds"]
    this = next((label for label in prism if not label.startswith("replay ")), None)
    if this is not None:
        prism[f"bench process ({', '.join(here) or 'coordination'})"] = prism.pop(this)
    return cost.Usage(used.seconds, prism, dict(used.stores))


async def _child(name: str, version: int, batch_size: int, budget: float | None) -> dict:
    from infra import bootstrap

    tune_for_batches()  # as a worker process of prism serve is
    settings = Settings()
    engine = bootstrap.write_engine(settings, pool_size=2)
    stores = await bootstrap.open_stores(settings, only=(PROJECTIONS[name].store,))
    cpu = time.process_time()  # the replay's own CPU, all threads: not the interpreter's start nor its imports
    try:
        result = await _replay(engine, stores, name, version, batch_size, budget)
    finally:
        await bootstrap.close_stores(stores)
        await engine.dispose()
    return result | {"cpu_seconds": round(time.process_time() - cpu, 3)}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_child(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]) or None))))

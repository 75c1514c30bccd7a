"""CPU seconds over a stretch of a benchmark, per Prism process (by role) and per store, from ``/proc``; net of the
same processes' idle use; per order or event.

CPU seconds, unlike wall time, do not depend on what else the machine ran meanwhile,
so a figure per order is comparable between runs of a busy machine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from infra.bench import procs

PRISM, STORES = "prism", "stores"


@dataclass
class _Tracked:
    group: str
    name: str
    first: float
    last: float


@dataclass
class Usage:
    """CPU seconds used over ``seconds`` of wall time: per Prism process (role) and per store."""

    seconds: float
    prism: dict[str, float] = field(default_factory=dict)
    stores: dict[str, float] = field(default_factory=dict)


class CpuSampler:
    """The processes under ``roots`` (by role) and the stores' (by store), sampled every ``every`` seconds until
    stopped: a process that ends meanwhile keeps what it had used at its last sample, one that starts counts all it
    uses. ``databases``: the Postgres databases whose backends count."""

    def __init__(self, roots: Iterable[int], databases: Iterable[str], every: float = 0.25) -> None:
        self.roots, self.databases, self.every = list(roots), set(databases), every
        self.seen: dict[int, _Tracked] = {}
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> CpuSampler:
        self._sample(first=True)
        self.started = time.monotonic()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_) -> None:
        await self.stop()

    async def stop(self) -> Usage:
        """Stops sampling (once) after a last sample; what was used since the start."""
        if self._task is not None:
            self._stop.set()
            await self._task
            self._task = None
            self._sample()
            self.ended = time.monotonic()
        return self.usage()

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), self.every)
            except TimeoutError:
                await asyncio.to_thread(self._sample)

    def _sample(self, first: bool = False) -> None:
        found = procs.everything()
        ours = procs.descendants(found, self.roots)
        for pid, proc in found.items():
            tracked = self.seen.get(pid)
            if tracked is not None:
                tracked.last = proc.cpu_seconds
                continue
            if pid in ours:
                group, name = PRISM, procs.role(proc.args)
            elif (store := procs.store_of(proc, self.databases)) is not None:
                group, name = STORES, store
            else:
                continue
            # A process already there at the start counts from its CPU then; one started since counts all of it.
            self.seen[pid] = _Tracked(group, name, proc.cpu_seconds if first else 0.0, proc.cpu_seconds)

    def usage(self) -> Usage:
        result = Usage(round(getattr(self, "ended", time.monotonic()) - self.started, 3))
        for tracked in self.seen.values():
            bucket = result.prism if tracked.group == PRISM else result.stores
            bucket[tracked.name] = bucket.get(tracked.name, 0.0) + tracked.last - tracked.first
        return result


def net_of_idle(loaded: Usage, idle: Usage) -> Usage:
    """What the load used beyond the idle processes': the idle rate over the loaded stretch's length, subtracted.

    A process idle used more than loaded (noise) comes out negative rather than clipped, so the totals stay sums.
    """
    scale = loaded.seconds / idle.seconds if idle.seconds else 0.0

    def less(used: dict[str, float], at_rest: dict[str, float]) -> dict[str, float]:
        return {name: used.get(name, 0.0) - at_rest.get(name, 0.0) * scale for name in used.keys() | at_rest.keys()}

    return Usage(loaded.seconds, less(loaded.prism, idle.prism), less(loaded.stores, idle.stores))


def per_unit(usage: Usage, units: int) -> dict:
    """CPU ms per order (or event): per process, per store, Prism's total, the stores', all; and the CPU seconds."""
    if units <= 0:
        return {"units": units}

    def ms(seconds: float) -> float:
        return round(1000 * seconds / units, 3)

    prism, stores = sum(usage.prism.values()), sum(usage.stores.values())
    return {
        "units": units,
        "seconds": usage.seconds,
        "cpu_seconds": round(prism + stores, 3),
        "processes_ms": {name: ms(s) for name, s in sorted(usage.prism.items(), key=lambda item: -item[1])},
        "stores_ms": {name: ms(s) for name, s in sorted(usage.stores.items(), key=lambda item: -item[1])},
        "prism_ms": ms(prism),
        "stores_total_ms": ms(stores),
        "total_ms": ms(prism + stores),
    }

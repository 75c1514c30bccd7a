"""The relay and a Dramatiq worker: what carries the log's new positions to the projections, in any process.

Kept apart from the HTTP app (``entrypoints``), so that a process that runs only these (a worker, the supervisor's
relay) never imports FastAPI, uvicorn and the readers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import TYPE_CHECKING

import dramatiq

from infra import bootstrap
from infra.processes.gc_tuning import tune_for_batches
from infra.settings import Settings
from projections.registry import PROJECTIONS
from workers.broker import build_queue_name, queue_name, send_all_coalesced
from workers.broker import queues as worker_queues
from workers.relay import Relay

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("prism")

#: What a worker takes: its projections' catch-ups (the live versions), their rebuilds, or both.
LIVE, BUILDS, BOTH = "live", "builds", "both"
QUEUES = {
    LIVE: lambda ns, name: {queue_name(ns, name)},
    BUILDS: lambda ns, name: {build_queue_name(ns, name)},
    BOTH: worker_queues,
}
BUILDS_POLL_MS = 1000


class Pipeline:
    """The relay and a Dramatiq worker, started and stopped alongside an app or alone.

    ``projections`` limits the worker to those projections' queues (a worker process per
    store under ``serve``); every actor is declared either way, so any process can send.
    """

    def __init__(
        self,
        settings: Settings,
        with_worker: bool = True,
        with_relay: bool = True,
        projections: list[str] | None = None,
        takes: str = BOTH,
    ) -> None:
        self.settings = settings
        self.runner = bootstrap.runner(settings, projections, builds=takes == BUILDS)
        self.broker, self.actors = bootstrap.broker_and_actors(settings, self.runner)
        names = list(PROJECTIONS) if projections is None else projections
        queues = set().union(*(QUEUES[takes](settings.namespace, name) for name in names))
        # A catch-up follows commits for a slice while holding its thread, and a rebuild's slice holds another:
        # a thread per partition of each projection and queue kind taken here.
        threads = max(settings.worker_threads, len(names) * settings.partitions * (2 if takes == BOTH else 1))
        # Rebuilds are not waited for by readers: their queues are looked at less often.
        poll = settings.worker_poll_ms if takes != BUILDS else BUILDS_POLL_MS
        self.worker = (
            dramatiq.Worker(self.broker, queues=queues, worker_threads=threads, worker_timeout=poll)
            if with_worker
            else None
        )
        self.with_relay = with_relay
        self._stop = asyncio.Event()
        self._relay_task: asyncio.Task | None = None

    def send_all(self, head: int, partitions: dict[str, int] | None = None) -> None:
        """A catch-up message to each partition of each projection (``partitions``: their live counts)."""
        counts = partitions or {}
        send_all_coalesced([(a, p) for name, a in self.actors.items() for p in range(counts.get(name, 1))], head)

    async def start(self, app: FastAPI | None = None) -> None:
        if self.worker:
            self.worker.start()
        if self.with_relay:
            engine = app.state.write_engine if app else bootstrap.write_engine(self.settings, pool_size=2, role="relay")
            relay = Relay(engine, bootstrap.listen_dsn(self.settings), self.send_all, self.settings.relay_poll_seconds)
            self._relay_task = asyncio.create_task(relay.run(self._stop))

    async def stop(self, app: FastAPI | None = None) -> None:
        self._stop.set()
        if self._relay_task:
            await asyncio.gather(self._relay_task, return_exceptions=True)
        if self.worker:
            if self.runner.notices is not None:
                self.runner.notices.stop()  # a catch-up following commits returns now, not at its slice's end
            await asyncio.to_thread(self.worker.stop)
        self.broker.close()


def relay_only(settings: Settings) -> None:
    """The relay alone (``prism relay``), for when ``prism serve`` does not run it (``serve_relay`` false)."""
    asyncio.run(_until_signal(Pipeline(settings, with_worker=False)))


def worker_only(settings: Settings, projections: list[str] | None = None, takes: str = BOTH) -> None:
    """A projection worker; one that takes rebuilds alone runs at ``builder_nice``, so that under a full machine the
    live versions (and the API) are served first."""
    os.nice(settings.builder_nice if takes == BUILDS else settings.worker_nice)
    tune_for_batches()
    asyncio.run(_until_signal(Pipeline(settings, with_relay=False, projections=projections or None, takes=takes)))


async def _until_signal(pipeline: Pipeline) -> None:
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopped.set)
    await pipeline.start()
    log.info("running; stop with Ctrl-C")
    await stopped.wait()
    await pipeline.stop()

"""The naive design, run on the same stores and log for comparison: after each commit, one Dramatiq message
per event for each projection, and each message applies its one event to its store.

It reuses the projections' own apply (so the stores hold the same documents) with a
batch of one, on versions of their own, behind a Redis broker of its own. Eight
worker threads, as a deployment of that design would use to keep up.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from dataclasses import asdict
from datetime import datetime
from typing import Any

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AgeLimit, Callbacks, Pipelines, Retries, ShutdownNotifications, TimeLimit
from dramatiq.middleware.asyncio import AsyncIO

from infra import bootstrap
from infra.settings import Settings
from projections.base import Batch
from projections.registry import PROJECTIONS
from projections.stores.clients import Stores
from write import event_log
from write.events import StoredEvent

VERSION = 3
THREADS = 8


class _Stores:
    """Clients opened on the worker's event loop on first use (async clients belong to one loop)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stores: Stores | None = None
        self.projections: dict = {}
        self.lock = asyncio.Lock()

    async def projection(self, name: str):
        async with self.lock:
            if self.stores is None:
                self.stores = await bootstrap.open_stores(self.settings)
            if name not in self.projections:
                self.projections[name] = PROJECTIONS[name](self.stores, VERSION)
                await self.projections[name].setup()
        return self.projections[name]


def _encode(event: StoredEvent) -> str:
    return json.dumps(asdict(event), default=str)


def _decode(text: str) -> StoredEvent:
    raw = json.loads(text)
    for key in ("event_id", "aggregate_id", "correlation_id", "causation_id"):
        raw[key] = uuid.UUID(raw[key]) if raw[key] else None
    raw["occurred_at"] = datetime.fromisoformat(raw["occurred_at"])
    return StoredEvent(**raw)


async def naive_rate(settings: Settings, log_engine, events: int, seconds: float, log=print) -> dict:
    """Publish the first ``events`` events of the log as one message per event and projection, then time the
    workers until every queue is empty (or ``seconds`` pass); events per second that reached all stores."""
    # Dramatiq's default middleware less Prometheus, as Prism's own broker runs.
    middleware = [m() for m in (AgeLimit, TimeLimit, ShutdownNotifications, Callbacks, Pipelines, Retries)]
    broker = RedisBroker(url=settings.broker_url, namespace=f"{settings.namespace}-naive", middleware=middleware)
    broker.add_middleware(AsyncIO())
    clients = _Stores(settings)
    done = dict.fromkeys(PROJECTIONS, 0)
    failed: list[str] = []
    counting = threading.Lock()
    actors: dict[str, Any] = {}
    for name in PROJECTIONS:

        async def apply(text: str, name: str = name) -> None:
            event = _decode(text)
            try:
                projection = await clients.projection(name)
                await projection.apply(Batch([event] if event.type in projection.handles else [], event.position))
            except Exception as error:  # noqa: BLE001  # counted, not retried: the run reports it
                failed.append(f"{name}: {type(error).__name__}: {error}")
            with counting:
                done[name] += 1

        apply.__name__ = f"naive_{name}"
        actors[name] = dramatiq.actor(broker=broker, queue_name=f"naive.{name}", max_retries=0)(apply)
    broker.flush_all()
    async with log_engine.connect() as conn:
        stored = await event_log.read_after(conn, 0, events)
    worker = dramatiq.Worker(broker, worker_threads=THREADS)
    log(f"  naive design: {len(stored):,} events x {len(PROJECTIONS)} projections as single messages")
    started = time.perf_counter()
    worker.start()
    for event in stored:  # what the naive design does after each commit
        body = _encode(event)
        for actor in actors.values():
            actor.send(body)
    deadline = started + seconds
    while sum(done.values()) < len(stored) * len(actors) and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)  # counted by the actors' threads: nothing to await on this loop
    wall = time.perf_counter() - started
    complete, failures = min(done.values()), list(failed)
    broker.flush_all()  # a run cut short by the deadline leaves messages behind
    loop_thread = get_event_loop_thread()
    try:
        if loop_thread is not None and clients.stores is not None:
            for projection in clients.projections.values():
                loop_thread.run_coroutine(projection.drop())
            loop_thread.run_coroutine(bootstrap.close_stores(clients.stores))
    finally:  # a store gone meanwhile must not leave the worker's threads running: the process could never exit
        worker.stop()
        broker.close()
    return {
        "events": len(stored),
        "threads": THREADS,
        "seconds": round(wall, 3),
        "finished": complete == len(stored),
        "events_per_s": round(complete / wall, 1),
        "messages_per_s": round(sum(done.values()) / wall, 1),
        "per_store_events": done,
        "failures": len(failures),
        "first_failure": failures[0][:300] if failures else None,
    }

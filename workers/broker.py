"""Dramatiq wiring: a Redis broker and one catch-up actor per projection, each on its own queue."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)
from dramatiq.middleware.asyncio import AsyncIO

from projections.registry import PROJECTIONS
from projections.stores import registry
from workers.runner import ProjectionRunner

log = logging.getLogger("prism.workers")


class CloseResources(Middleware):
    """Closes the runner's clients on the worker's event loop after the worker threads stop, before the loop does."""

    def __init__(self, runner: ProjectionRunner) -> None:
        self.runner = runner

    def after_worker_shutdown(self, broker, worker) -> None:
        loop_thread = get_event_loop_thread()
        if loop_thread is not None:
            loop_thread.run_coroutine(self.runner.close())


#: The longest one call to the broker's Redis may take: its consumers poll without blocking.
BROKER_SOCKET_SECONDS = 10.0


def make_broker(url: str, namespace: str, runner: ProjectionRunner) -> RedisBroker:
    # Dramatiq's defaults less Prometheus, whose exporter wants a process of its own.
    middleware = [m() for m in (AgeLimit, TimeLimit, ShutdownNotifications, Callbacks, Pipelines, Retries)]
    # A host cut off from Redis, then back: its blocked reads fail and its consumers reconnect within seconds,
    # instead of waiting out TCP's retransmissions.
    broker = RedisBroker(
        url=url,
        namespace=f"{namespace}-dramatiq",
        middleware=middleware,
        socket_timeout=BROKER_SOCKET_SECONDS,
        socket_connect_timeout=BROKER_SOCKET_SECONDS,
        socket_keepalive=True,
    )
    broker.add_middleware(AsyncIO())
    broker.add_middleware(CloseResources(runner))  # after-hooks run in reverse: this one before AsyncIO's
    return broker


def queue_name(namespace: str, projection: str) -> str:
    return f"{namespace}.{projection}"


#: How long a queued catch-up stands for every later one; past it a message counts as lost and another goes.
PENDING_SECONDS = 5


def send_coalesced(actor: dramatiq.Actor, target: int, partition: int = 0) -> bool:
    """Queue a catch-up of one partition unless one is already waiting in this projection's queue.

    A catch-up goes to the head it finds, so one waiting message serves every write
    before it runs; without this, a busy log queues messages faster than a worker
    drains them and each costs a lock and a checkpoint read. The mark is cleared when
    a worker picks the message up (``taken``). The StubBroker has no Redis: send always.
    """
    return bool(send_all_coalesced([(actor, partition)], target))


def send_all_coalesced(sends: list[tuple[dramatiq.Actor, int]], target: int) -> list[tuple[dramatiq.Actor, int]]:
    """``send_coalesced`` to (actor, partition) pairs of one broker, their marks tried in one round trip (the relay's
    round for every partition of every projection, at each commit, costs one call to Redis while their messages
    wait); those sent to."""
    client = getattr(sends[0][0].broker, "client", None) if sends else None
    if client is None:
        free = [True] * len(sends)
    else:
        with client.pipeline(transaction=False) as marks:
            for actor, partition in sends:
                marks.set(_pending_key(actor, partition), target, nx=True, ex=PENDING_SECONDS)
            free = marks.execute()
    sent = [send for send, marked in zip(sends, free, strict=True) if marked]
    for actor, partition in sent:
        actor.send(target, partition)
    return sent


def taken(actor: dramatiq.Actor, partition: int = 0) -> None:
    client = getattr(actor.broker, "client", None)
    if client is not None:
        client.delete(_pending_key(actor, partition))


def _pending_key(actor: dramatiq.Actor, partition: int) -> str:
    broker: Any = actor.broker  # a Prism broker: it carries its namespace
    return f"{broker.namespace}:pending:{actor.queue_name}" + (f":{partition}" if partition else "")


def declare_actors(
    broker: dramatiq.Broker,
    runner: ProjectionRunner,
    names: list[str],
    namespace: str,
    *,
    max_retries: int,
    min_backoff: int,
    max_backoff: int,
) -> dict[str, dramatiq.Actor]:
    """Per projection, a catch-up actor (a message means "catch up to at least this position"), returned, and a
    build actor on a queue of its own (see ``build_queue_name``) that the catch-up sets going when a version is
    being built or dropped beside the live one."""
    return {name: _actor(broker, runner, name, namespace, max_retries, min_backoff, max_backoff) for name in names}


def build_queue_name(namespace: str, projection: str) -> str:
    return f"{queue_name(namespace, projection)}.build"


def queues(namespace: str, projection: str) -> set[str]:
    """The queues a worker of one projection consumes."""
    return {queue_name(namespace, projection), build_queue_name(namespace, projection)}


def _actor(broker, runner, name, namespace, max_retries, min_backoff, max_backoff) -> dramatiq.Actor:
    # A message names its partition of the version it finds (0 of 1 unless split; messages from before partitions
    # had one argument).
    async def build(target: int, partition: int = 0) -> None:
        taken(builder, partition)
        if await runner.build(name, partition) is False:  # more to build: queue behind the other messages
            send_coalesced(builder, target, partition)

    async def catch_up(target: int, partition: int = 0) -> None:
        taken(actor, partition)  # before reading the log: a write committed from now on queues a new message
        if await runner.catch_up(name, target, partition) is False:
            send_coalesced(actor, target, partition)
        if runner.beside(name):
            send_all_coalesced([(builder, each) for each in range(runner.building(name))], target)

    store = PROJECTIONS[name].store if name in PROJECTIONS else None
    build, catch_up = _outages_retried(name, store, build), _outages_retried(name, store, catch_up)
    build.__name__, catch_up.__name__ = f"build_{name}", f"catch_up_{name}"
    options = {"max_retries": max_retries, "min_backoff": min_backoff, "max_backoff": max_backoff}
    builder = dramatiq.actor(
        broker=broker, actor_name=f"{namespace}.build.{name}", queue_name=build_queue_name(namespace, name), **options
    )(build)
    actor = dramatiq.actor(
        broker=broker, actor_name=f"{namespace}.catch_up.{name}", queue_name=queue_name(namespace, name), **options
    )(catch_up)
    return actor


def _outages_retried(name: str, store: str | None, work: Callable[[int, int], Awaitable[None]]):
    """``work``, whose failures of its store (down, hung, overloaded) are retried with backoff and logged in one line:
    an outage is expected, its traceback says nothing. Any other failure goes to Dramatiq as it is."""

    async def run(target: int, partition: int = 0) -> None:
        try:
            await work(target, partition)
        except Exception as error:
            failure = registry.translate(error, store)
            if failure is None or not failure.retryable:
                raise
            log.warning("%s: %s; retried with backoff", name, failure.message)
            raise dramatiq.Retry(failure.message) from error

    return run

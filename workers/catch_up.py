"""Catching a projection up with the log: read a batch after its checkpoint, apply it, repeat.

While a full batch is applied, the slice after it is already being read: the log's
server and this process's decoding overlap the store's work.

One consumer per projection at a time keeps the log's global order (see ``locks``).

When a batch fails with an error that is not the store's own outage, its events
are applied one by one to find the one that fails; that event's failures are
counted, and after ``poison_after`` of them it is parked (see ``dead_letters``).
Until then the error propagates and Dramatiq retries with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from projections.base import Batch, Projection
from workers import batch_spans, dead_letters, memory
from workers.errors import is_transient
from workers.locks import awaited, projection_lock
from workers.notices import Notices
from write import event_log
from write.events import StoredEvent
from write.upcasting import upcast

log = logging.getLogger("prism.catch_up")
#: Projections with failure counts recorded by this process, to clear once they apply again.
_FAILED: set[str] = set()


@dataclass(frozen=True)
class Policy:
    """How a projection treats poison events."""

    on_poison: str = dead_letters.HALT
    poison_after: int = 3


@dataclass
class Progress:
    """What one catch-up did; ``skipped`` when another consumer held the projection, ``halted`` at a poison event."""

    projection: str
    checkpoint: int
    #: Events applied (of the types the projection handles), and log positions passed (every type).
    applied: int = 0
    passed: int = 0
    batches: int = 0
    skipped: bool = False
    halted: bool = False
    drained: bool = False
    #: Stopped between two batches for an operation waiting for the lock (see ``locks.exclusively``).
    stepped_aside: bool = False
    last_batch_size: int = 0
    last_batch_seconds: float = 0.0
    parked: list[int] = field(default_factory=list)
    #: Seconds from commit to applied of a few events of each batch (``VISIBLE_SAMPLE``), for status.
    visible: list[float] = field(default_factory=list)


async def catch_up(
    log_engine: AsyncEngine,
    projection: Projection,
    batch_size: int,
    target: int = 0,
    policy: Policy | None = None,
    seconds: float | None = None,
    until: int | None = None,
) -> Progress:
    """Apply every event after the checkpoint, batch by batch, until the head (or a halt) is reached.

    With ``seconds``, stop after the batch that passes that budget (``drained`` says whether the head was reached);
    at least one batch is applied, however long its read takes under load.
    """
    async with projection_lock(log_engine, projection.label) as held:
        if not held:
            return Progress(projection.label, target, skipped=True)
        asked = functools.partial(awaited, log_engine, projection.label)  # a round trip per batch: no notices here
        return await drain(log_engine, projection, batch_size, policy or Policy(), seconds, until, step_aside=asked)


async def follow(
    log_engine: AsyncEngine,
    projection: Projection,
    batch_size: int,
    policy: Policy,
    notices: Notices,
    seconds: float,
) -> Progress:
    """``catch_up``, then keep the lock for ``seconds`` and apply the commits as they are announced.

    Between batches only the log is read and the store written: no message, lock,
    checkpoint read or halt check per commit (this consumer is the one that would
    halt). A projection with a freshness budget gathers the commits of up to its
    budget into one batch, counted from the first commit the batch holds, unless a
    reader waits for one of them (see ``notices.Notices.gather``); meanwhile readers'
    requests reach ``Projection.hurry`` while a batch is written. The ``seconds``
    bound every drain too: under steady writes to a store slower than their pace,
    the log never looks empty.
    """
    async with projection_lock(log_engine, projection.label) as held:
        if not held:
            return Progress(projection.label, 0, skipped=True)
        await notices.listening()  # before the first read: a commit after it is then announced
        deadline = time.monotonic() + seconds
        key = asked_as(projection)
        projection.waited_for = lambda: notices.wanted_of(key)  # type: ignore[method-assign]
        read_from = time.monotonic()
        progress = Progress(projection.label, 0)
        hurrying = asyncio.create_task(_hurry_when_asked(projection, notices, lambda: progress.checkpoint))
        asked = _asked_by_notice(log_engine, projection.label, notices)
        try:
            progress = await drain(log_engine, projection, batch_size, policy, seconds, step_aside=asked)
            while not (progress.halted or progress.stepped_aside) and time.monotonic() < deadline:
                waiting_since = time.monotonic()
                if not await notices.wait_past(
                    progress.checkpoint, deadline - time.monotonic(), projection.partition, key, projection.label
                ):
                    progress.stepped_aside = notices.aside_asked(projection.label)
                    break
                # The first commit of the next batch came during the last drain, or just now if none had.
                first = read_from if time.monotonic() - waiting_since < 0.001 else time.monotonic()
                if projection.gathers and projection.budget:
                    gather = first + projection.budget - time.monotonic()
                    await notices.gather(key, progress.checkpoint, min(gather, deadline - time.monotonic()))
                read_from = time.monotonic()
                more = await drain(
                    log_engine,
                    projection,
                    batch_size,
                    policy,
                    max(deadline - time.monotonic(), 0.0),
                    start=progress.checkpoint,
                    step_aside=asked,
                )
                _add(progress, more)
        finally:
            hurrying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hurrying
        return progress


def asked_as(projection: Projection) -> str:
    """What readers ask a projection's partition by (``order_summaries/2of4``): they know no version."""
    return projection.name + projection.partition.suffix


def _add(progress: Progress, more: Progress) -> None:
    """Fold a later drain's progress into a follow's."""
    progress.applied, progress.batches = progress.applied + more.applied, progress.batches + more.batches
    progress.passed += more.passed
    progress.checkpoint, progress.halted, progress.parked = more.checkpoint, more.halted, progress.parked + more.parked
    progress.drained, progress.stepped_aside = more.drained, more.stepped_aside
    progress.visible += more.visible
    if more.batches:
        progress.last_batch_size, progress.last_batch_seconds = more.last_batch_size, more.last_batch_seconds


StepAside = Callable[[], Awaitable[bool]]


def _asked_by_notice(log_engine: AsyncEngine, label: str, notices: Notices) -> StepAside:
    """Whether an operation waits for the lock, as its notices said (no round trip), or asked of the database while
    they are not heard."""

    async def asked() -> bool:
        return notices.aside_asked(label) if notices.hearing else await awaited(log_engine, label)

    return asked


async def _hurry_when_asked(projection: Projection, notices: Notices, checkpoint: Callable[[], int]) -> None:
    """While a follow holds the projection: each time a reader asks for a position past what it has applied (and
    past what it was hurried for), ``hurry`` it: a store that makes writes visible on its own schedule then does so
    at once, for the batch being written (the next batches see ``waited_for``)."""
    hurried, key = 0, asked_as(projection)
    while True:
        await notices.asked(key, max(hurried, checkpoint()))
        if notices.stopped:
            return
        hurried = notices.wanted_of(key)
        try:
            await projection.hurry()
        except Exception as error:  # noqa: BLE001  # the batch's own write reports the store's trouble
            log.debug("%s: hurry failed: %s", projection.label, dead_letters.describe(error))


async def drain(
    log_engine: AsyncEngine,
    projection: Projection,
    batch_size: int,
    policy: Policy,
    seconds: float | None = None,
    until: int | None = None,
    start: int | None = None,
    step_aside: StepAside | None = None,
) -> Progress:
    """``catch_up`` for a caller that already holds the projection's lock; with ``until``, stop once past it.

    Under steady writes the log may never look empty to a slow store, so "caught up"
    also means "past the head this call was given" (``drained``). For the same
    reason a consumer that took the lock unasked asks ``step_aside`` after each batch
    whether an operation waits, and lets it in; the operations themselves drain with
    ``until``.
    """
    progress = await _drain(log_engine, projection, batch_size, policy, seconds, until, start, step_aside)
    await projection.settle()
    memory.PASSED.add(progress.passed)
    if (
        progress.drained and memory.PASSED.due()
    ):  # a large catch-up or rebuild is done: its freed objects' pages go back
        await asyncio.to_thread(memory.give_back)
    return progress


async def _drain(
    log_engine: AsyncEngine,
    projection: Projection,
    batch_size: int,
    policy: Policy,
    seconds: float | None,
    until: int | None,
    start: int | None,
    step_aside: StepAside | None,
) -> Progress:
    deadline = None if seconds is None else time.monotonic() + seconds
    if start is not None:  # the caller has held the lock since it last read the checkpoint
        progress = Progress(projection.label, start)
    else:
        progress = Progress(projection.label, await projection.checkpoint())
        if await dead_letters.halted_at(log_engine, projection.label) is not None:
            progress.halted = True
            return progress
    async with _Slices(log_engine, projection, batch_size) as slices:
        while True:
            if until is not None and progress.checkpoint >= until:  # past the head it was given: no read to learn it
                progress.drained = True
                return progress
            if deadline is not None and progress.batches and time.monotonic() > deadline:
                return progress  # before the read: a slice read past the budget and dropped is work lost, every time
            events, upto = await slices.after(progress.checkpoint)
            if upto <= progress.checkpoint:
                progress.drained = True
                return progress
            started = time.perf_counter()
            more = len(events) == batch_size and (until is None or upto < until)
            if more and (deadline is None or time.monotonic() < deadline):
                slices.read_ahead(upto)
            with batch_spans.applying(projection, events, progress.checkpoint, upto):
                applied = await _apply(log_engine, projection, events, upto, policy, progress, more)
            if not applied:
                progress.halted = True
                return progress
            progress.last_batch_size, progress.last_batch_seconds = len(events), time.perf_counter() - started
            progress.visible += _visible(events)
            progress.passed += upto - progress.checkpoint
            progress.checkpoint, progress.batches = upto, progress.batches + 1
            progress.applied += len(events)
            if step_aside is not None and await step_aside():
                progress.stepped_aside = True
                return progress
            if len(events) < batch_size:  # the slice ended at the head it read: looking again would find the
                progress.drained = True  # commits since, which a follower hears of and a relay sends anyway
                return progress


#: Events of a batch whose commit-to-applied time is kept, spread over it: enough for percentiles, at a batch's cost
#: rather than an event's.
VISIBLE_SAMPLE = 16


def _visible(events: list[StoredEvent]) -> list[float]:
    """Seconds from each sampled event's commit to now, when its batch has been applied."""
    now = datetime.now(UTC)
    return [(now - event.occurred_at).total_seconds() for event in events[:: max(len(events) // VISIBLE_SAMPLE, 1)]]


class _Slices:
    """The log's slices for one projection, the next one read ahead on request (while this one is applied)."""

    def __init__(self, log_engine: AsyncEngine, projection: Projection, batch_size: int) -> None:
        self.log_engine, self.projection, self.batch_size = log_engine, projection, batch_size
        self.ahead: tuple[int, asyncio.Task] | None = None

    def read_ahead(self, after: int) -> None:
        self.ahead = (after, asyncio.create_task(self._read(after)))

    async def after(self, position: int) -> tuple[list[StoredEvent], int]:
        """The slice after ``position``: the one read ahead if it starts there."""
        if self.ahead is not None and self.ahead[0] == position:
            (_, task), self.ahead = self.ahead, None
            return await task
        return await self._read(position)

    async def _read(self, after: int) -> tuple[list[StoredEvent], int]:
        async with self.log_engine.connect() as conn:  # no transaction: two statements, not four round trips
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            return await event_log.read_slice(
                conn, after, self.batch_size, self.projection.handles, self.projection.partition
            )

    async def __aenter__(self) -> _Slices:
        return self

    async def __aexit__(self, *_) -> None:
        if self.ahead is not None:  # awaited, not cancelled: its connection goes back to the pool as after any read
            with contextlib.suppress(Exception):
                await self.ahead[1]


async def _apply(
    log_engine: AsyncEngine,
    projection: Projection,
    handled: list[StoredEvent],
    upto: int,
    policy: Policy,
    progress: Progress,
    more: bool = False,
) -> bool:
    """Apply one slice of the log (its events the projection handles, and where it ends); False when the projection
    halts inside it.

    Events are upcast here, inside the failure handling, so an event no upcaster can
    lift is parked like any other poison event instead of blocking the read.
    """
    try:
        await projection.apply(Batch([upcast(ev) for ev in handled], upto, more=more))
    except Exception as error:
        if is_transient(error, projection.store):
            raise
        log.warning(
            "%s: batch up to %d failed (%s); applying its events one by one",
            projection.label,
            upto,
            dead_letters.describe(error),
        )
        if not await _one_by_one(log_engine, projection, handled, policy, progress):
            return False
        await projection.apply(Batch([], upto))
    if projection.label in _FAILED:  # only after failures: a clean run costs no extra write
        await dead_letters.clear_failures(log_engine, projection.label, upto)
        _FAILED.discard(projection.label)
    return True


async def _one_by_one(
    log_engine: AsyncEngine, projection: Projection, handled: list[StoredEvent], policy: Policy, progress: Progress
) -> bool:
    for event in handled:
        try:
            await projection.apply(Batch([upcast(event)], event.position))
        except Exception as error:
            if is_transient(error, projection.store):
                raise
            _FAILED.add(projection.label)
            attempts = await dead_letters.record_failure(log_engine, projection.label, event.position, error)
            if attempts < policy.poison_after:
                raise
            progress.parked.append(await dead_letters.park(log_engine, projection.label, event, policy.on_poison))
            log.error(
                "%s: event %d (%s) parked after %d attempts (%s)",
                projection.label,
                event.position,
                event.type,
                attempts,
                policy.on_poison,
            )
            if policy.on_poison == dead_letters.HALT:
                return False
            await projection.apply(Batch([], event.position))
    return True

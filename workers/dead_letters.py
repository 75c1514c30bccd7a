"""Poison events: counted failures, the dead-letter table, halted projections, and retry or discard.

An event that fails to apply with a non-transient error ``poison_after`` times in a
row is parked here with its error. The projection's policy then decides:
``halt`` stops the projection at that event until someone retries or discards it;
``skip`` records it and moves on. Retrying a skipped event re-applies it out of
order, which the version-guarded stores accept as if it had come in order.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections.base import HALT, SKIP, Batch, Projection
from workers.locks import ProjectionBusy, exclusively
from write import event_log, partitions
from write.errors import PrismError
from write.events import StoredEvent
from write.schema import projection_dead_letters as letters
from write.schema import projection_failures as failures
from write.schema import projection_halts as halts


class DeadLetterError(PrismError):
    """Raised when a dead letter cannot be retried or discarded as asked."""

    http_status = 409
    code = "conflict"


class DeadLetterNotFound(DeadLetterError):
    """Raised when no dead letter has the given id."""

    http_status = 404
    code = "not_found"


@dataclass(frozen=True)
class DeadLetter:
    id: int
    projection: str
    position: int
    event_id: str
    event_type: str
    error: str
    attempts: int
    policy: str
    status: str
    first_failed_at: datetime
    last_failed_at: datetime
    resolved_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(self).items()}


async def record_failure(engine: AsyncEngine, projection: str, position: int, error: BaseException) -> int:
    """Count one more failure of this event; return how many in a row."""
    async with engine.begin() as conn:
        counted = insert(failures).values(projection=projection, position=position, attempts=1, error=describe(error))
        counted = counted.on_conflict_do_update(
            index_elements=[failures.c.projection, failures.c.position],
            set_={
                "attempts": failures.c.attempts + 1,
                "error": counted.excluded.error,
                "last_failed_at": func.now(),
            },
        )
        return (await conn.execute(counted.returning(failures.c.attempts))).scalar_one()


async def clear_failures(engine: AsyncEngine, projection: str, upto: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(delete(failures).where(failures.c.projection == projection, failures.c.position <= upto))


async def park(engine: AsyncEngine, projection: str, event: StoredEvent, policy: str) -> int:
    """Move the event's failure record into the dead-letter table; halt the projection if the policy says so."""
    async with engine.begin() as conn:
        failed = delete(failures).where(failures.c.projection == projection, failures.c.position == event.position)
        failure = (await conn.execute(failed.returning(*failures.c))).one()
        parked = insert(letters).values(
            projection=projection,
            position=event.position,
            event_id=event.event_id,
            event_type=event.type,
            event=json.loads(json.dumps(asdict(event), default=str)),  # ids and times as text, as it always was
            error=failure.error,
            attempts=failure.attempts,
            policy=policy,
            status="parked",
            first_failed_at=failure.first_failed_at,
            last_failed_at=failure.last_failed_at,
        )
        dead_id = (await conn.execute(parked.returning(letters.c.id))).scalar_one()
        if policy == HALT:
            await conn.execute(
                insert(halts).values(projection=projection, position=event.position, dead_letter_id=dead_id)
            )
    return dead_id


async def halted_at(engine: AsyncEngine, projection: str) -> int | None:
    async with engine.connect() as conn:
        return (await conn.execute(select(halts.c.position).where(halts.c.projection == projection))).scalar()


async def halted(conn: AsyncConnection) -> set[str]:
    """The labels of the projections halted at a parked event."""
    return set((await conn.execute(select(halts.c.projection))).scalars())


async def listing(
    engine: AsyncEngine, projection: str | None = None, status: str | None = "parked"
) -> list[DeadLetter]:
    c = letters.c
    query = select(
        c.id,
        c.projection,
        c.position,
        cast(c.event_id, Text),
        c.event_type,
        c.error,
        c.attempts,
        c.policy,
        c.status,
        c.first_failed_at,
        c.last_failed_at,
        c.resolved_at,
    ).order_by(c.id)
    if projection is not None:  # a version's label, and its partitions' (``order_summaries/2of8``)
        query = query.where(
            or_(c.projection == projection, func.starts_with(c.projection, projection + partitions.SEPARATOR))
        )
    if status is not None:
        query = query.where(c.status == status)
    async with engine.connect() as conn:
        return [DeadLetter(*row) for row in await conn.execute(query)]


async def counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(letters.c.projection, func.count())
            .where(letters.c.status == "parked")
            .group_by(letters.c.projection)
        )
        return dict(rows.all())


async def retry(engine: AsyncEngine, projections: dict[str, Projection], dead_id: int) -> DeadLetter:
    """Send a parked event back: a halted projection resumes at it; a skipped one is re-applied now."""
    letter = await _parked(engine, dead_id)
    if letter.policy == SKIP:
        projection = _projection(projections, letter)
        async with engine.connect() as conn:
            event = (await event_log.read_after(conn, letter.position - 1, 1))[0]
        async with exclusively(engine, projection.label):
            try:
                await projection.apply(Batch([event], event.position))
            except ProjectionBusy:
                raise
            except Exception as error:
                raise DeadLetterError(f"dead letter {dead_id} failed again: {describe(error)}") from error
    await _resolve(engine, letter, "retried")
    return await _one(engine, dead_id)


async def discard(engine: AsyncEngine, projections: dict[str, Projection], dead_id: int) -> DeadLetter:
    """Give up on a parked event; a projection halted at it moves past it."""
    letter = await _parked(engine, dead_id)
    if letter.policy == HALT:
        projection = _projection(projections, letter)
        async with exclusively(engine, projection.label):
            await projection.apply(Batch([], letter.position))
    await _resolve(engine, letter, "discarded")
    return await _one(engine, dead_id)


async def _resolve(engine: AsyncEngine, letter: DeadLetter, status: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(letters).where(letters.c.id == letter.id).values(status=status, resolved_at=func.now())
        )
        await conn.execute(delete(halts).where(halts.c.dead_letter_id == letter.id))


async def _one(engine: AsyncEngine, dead_id: int) -> DeadLetter:
    found = [d for d in await listing(engine, status=None) if d.id == dead_id]
    if not found:
        raise DeadLetterNotFound(f"dead letter {dead_id} does not exist")
    return found[0]


async def _parked(engine: AsyncEngine, dead_id: int) -> DeadLetter:
    letter = await _one(engine, dead_id)
    if letter.status != "parked":
        raise DeadLetterError(f"dead letter {dead_id} is already {letter.status}")
    return letter


def _projection(projections: dict[str, Projection], letter: DeadLetter) -> Projection:
    if letter.projection not in projections:
        raise DeadLetterError(f"projection {letter.projection!r} of dead letter {letter.id} is not registered")
    return projections[letter.projection]


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:4000]

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

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.base import HALT, SKIP, Batch, Projection
from workers.locks import ProjectionBusy, exclusively
from write import event_log
from write.events import StoredEvent



class DeadLetterError(Exception):
    """Raised when a dead letter cannot be retried or discarded as asked."""


class DeadLetterNotFound(DeadLetterError):
    """Raised when no dead letter has the given id."""


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
        return (
            await conn.execute(
                text(
                    "INSERT INTO projection_failures (projection, position, attempts, error) VALUES (:p, :pos, 1, :e) "
                    "ON CONFLICT (projection, position) DO UPDATE SET attempts = projection_failures.attempts + 1, "
                    "error = excluded.error, last_failed_at = now() RETURNING attempts"
                ),
                {"p": projection, "pos": position, "e": describe(error)},
            )
        ).scalar_one()


async def clear_failures(engine: AsyncEngine, projection: str, upto: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text("DELETE FROM projection_failures WHERE projection = :p AND position <= :upto"),
            {"p": projection, "upto": upto},
        )


async def park(engine: AsyncEngine, projection: str, event: StoredEvent, policy: str) -> int:
    """Move the event's failure record into the dead-letter table; halt the projection if the policy says so."""
    async with engine.begin() as conn:
        failure = (
            await conn.execute(
                text("DELETE FROM projection_failures WHERE projection = :p AND position = :pos RETURNING *"),
                {"p": projection, "pos": event.position},
            )
        ).one()
        dead_id = (
            await conn.execute(
                text(
                    "INSERT INTO projection_dead_letters (projection, position, event_id, event_type, event, error, attempts,"
                    " policy, status, first_failed_at, last_failed_at) VALUES (:p, :pos, :eid, :type, :event, :error,"
                    " :attempts, :policy, 'parked', :first, :last) RETURNING id"
                ),
                {
                    "p": projection,
                    "pos": event.position,
                    "eid": event.event_id,
                    "type": event.type,
                    "event": json.dumps(asdict(event), default=str),
                    "error": failure.error,
                    "attempts": failure.attempts,
                    "policy": policy,
                    "first": failure.first_failed_at,
                    "last": failure.last_failed_at,
                },
            )
        ).scalar_one()
        if policy == HALT:
            await conn.execute(
                text("INSERT INTO projection_halts (projection, position, dead_letter_id) VALUES (:p, :pos, :id)"),
                {"p": projection, "pos": event.position, "id": dead_id},
            )
    return dead_id


async def halted_at(engine: AsyncEngine, projection: str) -> int | None:
    async with engine.connect() as conn:
        return (
            await conn.execute(text("SELECT position FROM projection_halts WHERE projection = :p"), {"p": projection})
        ).scalar()


async def listing(
    engine: AsyncEngine, projection: str | None = None, status: str | None = "parked"
) -> list[DeadLetter]:
    query = (
        "SELECT id, projection, position, event_id::text, event_type, error, attempts, policy, status, "
        "first_failed_at, last_failed_at, resolved_at FROM projection_dead_letters "
        "WHERE (CAST(:p AS text) IS NULL OR projection = :p) AND (CAST(:s AS text) IS NULL OR status = :s) "
        "ORDER BY id"
    )
    async with engine.connect() as conn:
        return [DeadLetter(*row) for row in await conn.execute(text(query), {"p": projection, "s": status})]


async def counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT projection, count(*) FROM projection_dead_letters WHERE status = 'parked' GROUP BY projection")
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
            text("UPDATE projection_dead_letters SET status = :s, resolved_at = now() WHERE id = :id"),
            {"s": status, "id": letter.id},
        )
        await conn.execute(text("DELETE FROM projection_halts WHERE dead_letter_id = :id"), {"id": letter.id})


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

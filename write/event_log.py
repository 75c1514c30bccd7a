"""Appending to and reading from the event log.

Gap safety: a sequence value taken early can commit late, so a tailer reading
``position > checkpoint`` could skip a row that becomes visible after it moved
on. Appends therefore take one transaction-scoped advisory lock just before
inserting: positions are handed out while the lock is held and the lock is
released at commit, so commit order equals position order and a reader never
sees position N+1 before N. Per-aggregate order follows for free. The locked
part is one statement (lock, multi-row insert, notify), then the commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import fields
from typing import Any, Final

import orjson

from sqlalchemy import TextClause, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from write.events import NewEvent, StoredEvent
from write.schema import events
from write.upcasting import upcast

#: Key of the advisory lock that serializes appends ("prism" in ASCII).
APPEND_LOCK_KEY: Final = 0x707269736D
#: Channel told the new head position at each commit.
NOTIFY_CHANNEL: Final = "prism_events"


class EventLog:
    """The append side of the log; ``serialize=False`` exists only to prove the remedy in tests."""

    def __init__(self, serialize: bool = True) -> None:
        self.serialize = serialize

    async def append(
        self, conn: AsyncConnection, tenant_id: str, new: Sequence[NewEvent], correlation_id: uuid.UUID | None = None
    ) -> int:
        """Insert ``new`` in the caller's transaction and return the last position.

        The lock, the insert and the notify are one statement: the lock is then held for
        that statement and the commit only, not for client round trips in between (each
        of which may wait on a busy event loop while every other writer waits on it).
        """
        columns = {name: [] for name in _ARRAYS}
        for event in new:
            for name, value in _row(tenant_id, event, correlation_id).items():
                columns[name].append(value)
        statement = _APPEND_LOCKED if self.serialize else _APPEND
        result = await conn.execute(statement, {"key": APPEND_LOCK_KEY, "channel": NOTIFY_CHANNEL, **columns})
        return result.scalar_one()


#: Each column of the new events as one array parameter, with its element type.
_ARRAYS = {"event_id": "uuid", "tenant_id": "text", "aggregate_type": "text", "aggregate_id": "uuid",
           "aggregate_version": "int", "type": "text", "schema_version": "smallint", "payload": "text",
           "correlation_id": "uuid"}
_UNNEST = ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in _ARRAYS.items())
_COLUMNS = ", ".join(_ARRAYS)
_SELECTED = ", ".join("e.payload::jsonb" if name == "payload" else f"e.{name}" for name in _ARRAYS)


def append_statement(locked: bool) -> TextClause:
    """One statement: (take the append lock,) insert the events in order, notify the head, answer it."""
    lock = "locked AS (SELECT pg_advisory_xact_lock(:key)), " if locked else ""
    source = "locked, " if locked else ""
    return text(
        f"WITH {lock}inserted AS ("
        f"INSERT INTO events ({_COLUMNS}) SELECT {_SELECTED} "
        f"FROM {source}unnest({_UNNEST}) WITH ORDINALITY AS e({_COLUMNS}, n) ORDER BY e.n "
        f"RETURNING position) "
        f"SELECT max(position), pg_notify(:channel, max(position)::text) FROM inserted")


_APPEND_LOCKED, _APPEND = append_statement(True), append_statement(False)


def dumps(value: Any) -> str:
    """JSON as the log stores it (orjson: several times the standard library's speed on payloads)."""
    return orjson.dumps(value).decode()


def _row(tenant_id: str, event: NewEvent, correlation_id: uuid.UUID | None) -> dict:
    return {
        "event_id": event.event_id,
        "tenant_id": tenant_id,
        "aggregate_type": event.aggregate_type,
        "aggregate_id": event.aggregate_id,
        "aggregate_version": event.aggregate_version,
        "type": event.type,
        "schema_version": event.schema_version,
        "payload": dumps(event.payload),
        "correlation_id": correlation_id,
    }


#: The log's columns in ``StoredEvent``'s field order, so a row becomes an event positionally.
_FIELDS = [events.c[f.name] for f in fields(StoredEvent)]


async def read_after(conn: AsyncConnection, position: int, limit: int, upto: int | None = None,
                     upcasting: bool = True) -> list[StoredEvent]:
    """Events after ``position`` (and at most ``upto``), in log order, upcast unless told otherwise."""
    query = select(*_FIELDS).where(events.c.position > position).order_by(events.c.position).limit(limit)
    if upto is not None:
        query = query.where(events.c.position <= upto)
    result = await conn.execute(query)
    stored = [StoredEvent(*row) for row in result]
    return [upcast(event) for event in stored] if upcasting else stored


async def read_aggregates(conn: AsyncConnection, aggregate_ids: list) -> list[StoredEvent]:
    """Every event of the given aggregates, in log order (for re-projecting them)."""
    query = select(*_FIELDS).where(events.c.aggregate_id.in_(aggregate_ids)).order_by(events.c.position)
    return [upcast(StoredEvent(*row)) for row in await conn.execute(query)]


async def head(conn: AsyncConnection) -> int:
    """The highest committed position, 0 for an empty log."""
    return (await conn.execute(select(func.coalesce(func.max(events.c.position), 0)))).scalar_one()


async def occurred_at(conn: AsyncConnection, position: int):
    """When the event at ``position`` was written (None if there is none)."""
    return (await conn.execute(select(events.c.occurred_at).where(events.c.position == position))).scalar()

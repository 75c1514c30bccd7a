"""Appending to and reading from the event log.

Gap safety: a sequence value taken early can commit late, so a tailer reading
``position > checkpoint`` could skip a row that becomes visible after it moved
on. Positions are therefore handed out under one transaction-scoped advisory
lock, released at commit, so commit order equals position order and a reader
never sees position N+1 before N. Per-aggregate order follows for free.

The lock is taken at COMMIT: a command stages its events (``staged_events``), and a
deferred trigger (migration 0005) takes the lock, moves them into the log and
notifies the new head, all inside the commit. The lock is then held for the
server's own work and the commit's flush only; taken by a statement before COMMIT,
it was also held while the server waited for the client's COMMIT, and a busy client
process (one event loop serving many requests) made every other writer wait for its
next turn. A command learns its position after the commit (``committed_position``).
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
from write.partitions import WHOLE, Partition
from write.schema import events
from write.upcasting import upcast

#: Key of the advisory lock that serializes appends ("prism" in ASCII).
APPEND_LOCK_KEY: Final = 0x707269736D
#: Channel told each appended position at commit, with its tenant's bucket: ``<position>:<bucket>``.
NOTIFY_CHANNEL: Final = "prism_events"
#: Channel on which a reader waiting for a position asks a projection to write what it has gathered now
#: (payload ``<projection>:<position>``): read-your-writes need not wait out a freshness budget.
FLUSH_CHANNEL: Final = "prism_flush"


def notice(payload: str) -> tuple[int, int | None]:
    """An append notice's position and its tenant's bucket (None from a writer that names no bucket: a bulk load)."""
    position, _, bucket = payload.partition(":")
    return int(position or 0), int(bucket) if bucket else None


class EventLog:
    """The append side of the log; ``serialize=False`` exists only to prove the remedy in tests."""

    def __init__(self, serialize: bool = True) -> None:
        self.serialize = serialize

    async def append(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        new: Sequence[NewEvent],
        correlation_id: uuid.UUID | None = None,
        causation_id: uuid.UUID | None = None,
    ) -> None:
        """Stage ``new`` in the caller's transaction: they enter the log, in this order, at its COMMIT. Each carries
        ``correlation_id`` and ``causation_id`` (a traced command's trace and span: ``write.bus``).

        With ``serialize=False`` they are inserted into the log at once, with no lock: the gap the remedy closes.
        """
        columns: dict[str, list[Any]] = {name: [] for name in _ARRAYS}
        for event in new:
            for name, value in _row(tenant_id, event, correlation_id, causation_id).items():
                columns[name].append(value)
        await conn.execute(STAGE if self.serialize else _UNSERIALIZED, columns)


async def committed_position(conn: AsyncConnection, event_id: uuid.UUID) -> int:
    """The position an event got when its transaction committed: one round trip, outside any transaction
    (through the driver, as SQLAlchemy would open one for it and close it: two more round trips)."""
    driver: Any = (await conn.get_raw_connection()).driver_connection
    return await driver.fetchval(POSITION_OF, event_id)


#: Each column of the new events as one array parameter, with its element type.
_ARRAYS = {
    "event_id": "uuid",
    "tenant_id": "text",
    "aggregate_type": "text",
    "aggregate_id": "uuid",
    "aggregate_version": "int",
    "type": "text",
    "schema_version": "smallint",
    "payload": "text",
    "correlation_id": "uuid",
    "causation_id": "uuid",
}
_UNNEST = ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in _ARRAYS.items())
_COLUMNS = ", ".join(_ARRAYS)
_SELECTED = ", ".join("e.payload::jsonb" if name == "payload" else f"e.{name}" for name in _ARRAYS)


def _insert(table: str) -> TextClause:
    """The new events into ``table``, in their order (the order their rows, and so their triggers, come in)."""
    return text(
        f"INSERT INTO {table} ({_COLUMNS}) SELECT {_SELECTED} "
        f"FROM unnest({_UNNEST}) WITH ORDINALITY AS e({_COLUMNS}, n) ORDER BY e.n"
    )


#: Stages a command's events (the bench's floor sends it too).
STAGE = _insert("staged_events")
_UNSERIALIZED = _insert("events")
#: In asyncpg's form: sent on the driver's connection, outside a transaction.
POSITION_OF = "SELECT position FROM events WHERE event_id = $1"


def dumps(value: Any) -> str:
    """JSON as the log stores it (orjson: several times the standard library's speed on payloads)."""
    return orjson.dumps(value).decode()


def _row(tenant_id: str, event: NewEvent, correlation_id: uuid.UUID | None, causation_id: uuid.UUID | None) -> dict:
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
        "causation_id": causation_id,
    }


#: The log's columns in ``StoredEvent``'s field order, so a row becomes an event positionally.
_FIELDS = [events.c[f.name] for f in fields(StoredEvent)]


async def read_after(
    conn: AsyncConnection, position: int, limit: int, upto: int | None = None, upcasting: bool = True
) -> list[StoredEvent]:
    """Events after ``position`` (and at most ``upto``), in log order, upcast unless told otherwise."""
    query = select(*_FIELDS).where(events.c.position > position).order_by(events.c.position).limit(limit)
    if upto is not None:
        query = query.where(events.c.position <= upto)
    result = await conn.execute(query)
    stored = [StoredEvent(*row) for row in result]
    return [upcast(event) for event in stored] if upcasting else stored


async def read_slice(
    conn: AsyncConnection, position: int, limit: int, types: frozenset[str], partition: Partition = WHOLE
) -> tuple[list[StoredEvent], int]:
    """The next slice of the log after ``position`` for a consumer of ``types`` (and of ``partition``'s tenants): its
    events of those types (at most ``limit``, not upcast) and the position the slice ends at, past the events of
    other types and other partitions.

    Only the events asked for are sent and decoded. The head comes with them in one
    statement, so in one snapshot: positions are taken at commit in commit order (a
    commit is visible before the next can take its position), so a snapshot holds
    every event up to the head it sees. One round trip per batch, not two; and one
    constant statement sent on the driver, whose statement cache keeps it prepared:
    building the query anew for each batch cost a live worker more CPU than applying it.

    A partition's slice filters the same snapshot's rows, so the argument holds as is:
    every event of the partition up to the head is in it, or past its last event.
    """
    driver: Any = (await conn.get_raw_connection()).driver_connection
    if partition.whole:
        rows = await driver.fetch(SLICE, position, sorted(types), limit)
    else:
        rows = await driver.fetch(PARTITION_SLICE, position, sorted(types), limit, *partition.buckets)
    found = [StoredEvent(*row[1:]) for row in rows if row["position"] is not None]
    if len(found) == limit:
        return found, found[-1].position
    return found, max(rows[0]["head"], found[-1].position if found else position)


def _slice(among: str = "") -> str:
    return (
        f"SELECT seen.head, chosen.* FROM (SELECT coalesce(max(position), 0) AS head FROM events) AS seen "
        f"LEFT JOIN LATERAL (SELECT {', '.join(f.name for f in fields(StoredEvent))} FROM events "
        f"WHERE position > $1 AND type = ANY($2::text[]){among} ORDER BY position LIMIT $3) AS chosen ON true "
        f"ORDER BY chosen.position"
    )


#: In asyncpg's form: the log's head, and the slice after $1 of the types $2, at most $3 events.
SLICE = _slice()
#: The same, of the tenants whose bucket is in [$4, $5) (``write.partitions``; ``prism_bucket``: migration 0008).
PARTITION_SLICE = _slice(" AND prism_bucket(tenant_id) >= $4 AND prism_bucket(tenant_id) < $5")


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

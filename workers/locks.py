"""The single-writer lock of each projection.

A session-level advisory lock on the write database: Postgres releases it by itself
if the holder's connection dies, so a killed worker never leaves a projection stuck.
Catch-ups try it once (another consumer is already on the job); operations that
write outside the catch-up loop (repair, dead-letter retry and discard, a version
switch) wait for it. A waiter announces itself (a shared lock on a second key) so
catch-ups step aside: under steady writes a catch-up takes the lock for every commit
and keeps it to follow the next ones, and a waiter polling for it could lose every race.
While it waits, the waiter also asks the holder to step aside on a notice channel
(``STEP_ASIDE_CHANNEL``): a follower that listens there learns it between batches
without a statement per batch (``awaited`` is the statement, for those that do not).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from write.errors import PrismError

#: Channel on which an operation waiting for a projection's lock asks the holder to let it go (payload: the label).
STEP_ASIDE_CHANNEL = "prism_step_aside"


def lock_key(projection: str) -> int:
    return int.from_bytes(hashlib.sha256(f"prism:projection:{projection}".encode()).digest()[:8], "big", signed=True)


def _waiter_key(projection: str) -> int:
    return lock_key(f"waiting:{projection}")


#: The lock, unless a waiter has announced itself (its shared lock makes the exclusive try fail).
_TRY_UNLESS_AWAITED = text(
    "SELECT CASE WHEN pg_try_advisory_lock(:w) THEN pg_advisory_unlock(:w) AND pg_try_advisory_lock(:k) ELSE false END"
)


async def awaited(log_engine: AsyncEngine, name: str) -> bool:
    """Whether an operation is waiting for this projection's lock (a follower then lets it go)."""
    async with log_engine.connect() as conn:  # one statement, no transaction around it: asked after every batch
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        waiting = (await conn.execute(_AWAITED, {"w": _waiter_key(name)})).scalar()
    return bool(waiting)


_AWAITED = text("SELECT CASE WHEN pg_try_advisory_lock(:w) THEN NOT pg_advisory_unlock(:w) ELSE true END")


#: The lock, and (delivered when the attempt commits, so again at each failed one) a notice asking its holder to step
#: aside.
_TRY_ASKING_THE_HOLDER = text("SELECT pg_try_advisory_lock(:k) FROM (SELECT pg_notify(:c, :n)) AS asked")


class ProjectionBusy(PrismError):
    """Raised when another consumer kept the projection's lock for longer than the caller would wait."""

    http_status = 409
    code = "conflict"


@asynccontextmanager
async def projection_lock(log_engine: AsyncEngine, name: str, wait: float = 0.0) -> AsyncIterator[bool]:
    """The projection's single-writer lock; yields False if it was not had within ``wait`` seconds."""
    deadline = time.monotonic() + wait
    attempt = _TRY_ASKING_THE_HOLDER if wait else _TRY_UNLESS_AWAITED
    arguments = {"k": lock_key(name), "w": _waiter_key(name), "c": STEP_ASIDE_CHANNEL, "n": name}
    async with log_engine.connect() as lock_conn:
        while not (await lock_conn.execute(attempt, arguments)).scalar():
            await lock_conn.commit()
            if time.monotonic() >= deadline:
                yield False
                return
            await asyncio.sleep(0.05)
        await lock_conn.commit()  # the session lock outlives the transaction; no snapshot is held meanwhile
        try:
            yield True
        finally:
            await lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(name)})
            await lock_conn.commit()


@asynccontextmanager
async def exclusively(log_engine: AsyncEngine, name: str, wait: float = 30.0) -> AsyncIterator[None]:
    """Run an operation (repair, retry, discard, switch) as the projection's only writer, or raise ProjectionBusy."""
    async with log_engine.connect() as announce:
        await announce.execute(text("SELECT pg_advisory_lock_shared(:w)"), {"w": _waiter_key(name)})
        await announce.commit()
        try:
            async with projection_lock(log_engine, name, max(wait, 0.001)) as held:
                if not held:
                    raise ProjectionBusy(f"projection {name} stayed busy for {wait:.0f}s; try again")
                yield
        finally:
            await announce.execute(text("SELECT pg_advisory_unlock_shared(:w)"), {"w": _waiter_key(name)})
            await announce.commit()


@asynccontextmanager
async def exclusively_all(log_engine: AsyncEngine, names: list[str], wait: float = 30.0) -> AsyncIterator[None]:
    """``exclusively`` for several projections (every partition of a version, for a switch): all their locks held
    on one session, or none, so a caller never holds some while it waits for the others; ProjectionBusy when they
    were not all free together within ``wait`` seconds."""
    names = sorted(set(names))
    if len(names) == 1:
        async with exclusively(log_engine, names[0], wait):
            yield
        return
    waiters = [_waiter_key(name) for name in names]
    async with log_engine.connect() as announce:
        await announce.execute(_ANNOUNCE_ALL, {"w": waiters})
        await announce.commit()
        try:
            async with log_engine.connect() as lock_conn:
                await _take_all(lock_conn, names, time.monotonic() + max(wait, 0.001), wait)
                try:
                    yield
                finally:
                    await lock_conn.execute(_RELEASE_ALL, {"k": [lock_key(name) for name in names]})
                    await lock_conn.commit()
        finally:
            await announce.execute(_RELEASE_ANNOUNCED, {"w": waiters})
            await announce.commit()


_ANNOUNCE_ALL = text("SELECT count(pg_advisory_lock_shared(w)) FROM unnest(CAST(:w AS bigint[])) AS w")
_RELEASE_ANNOUNCED = text("SELECT count(pg_advisory_unlock_shared(w)) FROM unnest(CAST(:w AS bigint[])) AS w")
_RELEASE_ALL = text("SELECT count(pg_advisory_unlock(k)) FROM unnest(CAST(:k AS bigint[])) AS k")


async def _take_all(lock_conn, names: list[str], deadline: float, wait: float) -> None:
    """Try every lock in a round, asking each holder to step aside; let the ones had go unless all were."""
    while True:
        had = []
        for name in names:
            arguments = {"k": lock_key(name), "c": STEP_ASIDE_CHANNEL, "n": name}
            if (await lock_conn.execute(_TRY_ASKING_THE_HOLDER, arguments)).scalar():
                had.append(lock_key(name))
        await lock_conn.commit()
        if len(had) == len(names):
            return
        if had:
            await lock_conn.execute(_RELEASE_ALL, {"k": had})
            await lock_conn.commit()
        if time.monotonic() >= deadline:
            raise ProjectionBusy(f"projections {', '.join(names)} stayed busy for {wait:.0f}s; try again")
        await asyncio.sleep(0.05)

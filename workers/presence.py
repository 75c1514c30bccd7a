"""Which processes work on a namespace, on which hosts: each names itself in its database sessions.

Every write-database session of a Prism process carries ``application_name`` ``prism/<namespace>/<role>/<host>/<pid>``.
That is the whole registry: Postgres lists the sessions (``pg_stat_activity``) and ends a dead one's by itself, so a
process counts as present exactly while it holds a session, and the holder of a projection's lock (a session's
advisory lock) is named by the same row. The sessions carry TCP keepalives and a user timeout (``SESSION_SETTINGS``):
a host cut off from the network loses its sessions, and with them its locks, within seconds rather than the
kernel's default of hours.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.stores.postgres import KEEPALIVES

#: What a worker process that follows the live versions of a store's projections calls itself, and one of them all.
WORKER, EVERY_STORE = "work", "all"
#: The keepalives of every Prism session (the dashboards' too, whose open transaction holds row locks).
SESSION_SETTINGS = KEEPALIVES
#: How long a count of the live workers is trusted.
COUNT_SECONDS = 2.0


def identity(namespace: str, role: str, host: str, pid: int | None = None) -> str:
    """A session's ``application_name`` (Postgres keeps 63 bytes: the host and pid come last)."""
    return f"prism/{namespace}/{role}/{host}/{pid or os.getpid()}"[:63]


def worker_role(store: str | None) -> str:
    """The role of a worker process of one store's projections (``None``: of every store)."""
    return f"{WORKER}:{store or EVERY_STORE}"


def role_of(stores: set[str], builds: bool = False) -> str:
    """What a process working for these stores' projections calls itself: a worker of the live versions counts
    towards each one's share of the partitions; a builder does not."""
    store = next(iter(stores)) if len(stores) == 1 else None
    return f"build:{store or EVERY_STORE}" if builds else worker_role(store)


def session_settings(name: str) -> dict[str, str]:
    return {"application_name": name} | SESSION_SETTINGS


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: its host, role and process id, as its session names them."""

    host: str
    role: str
    pid: int

    @classmethod
    def parse(cls, application_name: str) -> Holder | None:
        parts = application_name.split("/")
        if len(parts) != 5 or parts[0] != "prism" or not parts[4].isdigit():
            return None
        return cls(parts[3], parts[2], int(parts[4]))

    def __str__(self) -> str:
        return f"{self.host}/{self.role}/{self.pid}"


_WORKERS = text(
    "SELECT count(DISTINCT application_name) FROM pg_stat_activity "
    "WHERE datname = current_database() "
    "AND (starts_with(application_name, :one) OR starts_with(application_name, :all))"
)


class Workers:
    """How many worker processes follow a store's projections now, on every host; counted at most every
    ``COUNT_SECONDS``."""

    def __init__(self, engine: AsyncEngine, namespace: str) -> None:
        self.engine, self.namespace = engine, namespace
        self._counted: dict[str, tuple[float, int]] = {}

    async def count(self, store: str) -> int:
        when, found = self._counted.get(store, (float("-inf"), 1))
        if time.monotonic() - when >= COUNT_SECONDS:
            prefixes = {
                "one": f"prism/{self.namespace}/{worker_role(store)}/",
                "all": f"prism/{self.namespace}/{worker_role(None)}/",
            }
            async with self.engine.connect() as conn:
                found = max(1, (await conn.execute(_WORKERS, prefixes)).scalar() or 0)
            self._counted[store] = (time.monotonic(), found)
        return found

    async def share(self, store: str, partitions: int) -> int:
        """The most partitions of one projection a worker takes, so that none idles while another holds many."""
        return math.ceil(partitions / await self.count(store))


_HOLDERS = text(
    "SELECT l.classid::bigint << 32 | l.objid::bigint AS key, a.application_name FROM pg_locks AS l "
    "JOIN pg_stat_activity AS a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.database = "
    "(SELECT oid FROM pg_database WHERE datname = current_database())"
)


async def holders(conn) -> dict[int, Holder | None]:
    """Each advisory lock held now (its 64-bit key) and who holds it."""
    found = {}
    for key, name in (await conn.execute(_HOLDERS)).all():
        signed = key - (1 << 64) if key >= 1 << 63 else key
        found[signed] = Holder.parse(name or "")
    return found

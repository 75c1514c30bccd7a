"""One host at a time owns the embedded ClickHouse: a session lock on the write database says which.

chDB keeps its data in a folder of one host, so two hosts running ``prism serve`` on the same stores would each
keep analytics of their own, half of them each. Before the owner process opens the engine it takes the namespace's
engine lock, a session advisory lock on a connection of its own (with the keepalives of ``workers.presence``);
without it, it waits, and meanwhile this host's API answers analytics 503 with Retry-After (its owner does not
listen yet). A host that dies or is cut off loses the session within seconds, and the next host's owner takes the
lock, opens its own engine and catches analytics up from its own checkpoint. An owner whose session is lost stops
at once: it may no longer write, and ``prism serve`` starts it again to wait for the lock. A ClickHouse server
(``PRISM_CLICKHOUSE_URL``) has none of this: every host writes and reads it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading

import asyncpg

from infra import bootstrap
from infra.settings import Settings
from workers import presence
from workers.locks import lock_key

log = logging.getLogger("prism.engine_owner")
#: Between two tries for the lock, and two checks that its session is still there.
TRY_SECONDS, CHECK_SECONDS = 1.0, 2.0
#: Exit status of an owner that lost the lock.
LOST = 3


def engine_key(namespace: str) -> int:
    return lock_key(f"clickhouse-owner:{namespace}")


def hold(settings: Settings) -> None:
    """Return once this process holds the namespace's engine lock; the process exits if it ever loses it."""
    had = threading.Event()
    thread = threading.Thread(target=asyncio.run, args=(_hold(settings, had),), name="prism-engine-owner", daemon=True)
    thread.start()
    while not had.wait(30):
        log.warning("the embedded ClickHouse of %s is owned by another host; waiting for it", settings.namespace)


async def _hold(settings: Settings, had: threading.Event) -> None:
    name = bootstrap.identity(settings, "clickhouse-owner")
    while True:
        try:
            conn = await asyncpg.connect(
                bootstrap.listen_dsn(settings), server_settings=presence.session_settings(name), timeout=10
            )
            await _take(conn, engine_key(settings.namespace))
            had.set()
            while True:
                await asyncio.sleep(CHECK_SECONDS)
                await asyncio.wait_for(conn.fetchval("SELECT 1"), CHECK_SECONDS * 2)
        except Exception as error:  # noqa: BLE001  # the database is away: the lock is not had, or is lost
            if had.is_set():
                log.error("lost the embedded ClickHouse's lock (%s): stopping, so that one host owns it", error)
                os._exit(LOST)
            await asyncio.sleep(TRY_SECONDS)


async def _take(conn: asyncpg.Connection, key: int) -> None:
    """The lock, tried again every ``TRY_SECONDS`` while another host's owner holds it."""
    while True:
        if await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
            return
        await asyncio.sleep(TRY_SECONDS)

"""Each host's ``prism serve`` processes, published for the console by the host's supervisor (or, without one, by
the process itself): the record ``prism status`` reads from ``var/``, put in the write database under the host's
name, so one console lists every host's. Kept light: the supervisor imports it."""

from __future__ import annotations

import os
import time
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from infra.processes.supervisor import running_processes, running_supervisor
from infra.settings import Settings
from write.schema import console_state as state

#: Each host's row in ``console_state``: ``host:<name>``.
PREFIX = "host:"
_STARTED = time.time()


async def publish(engine: AsyncEngine, settings: Settings) -> None:
    """This host's ``prism serve`` processes, or this process alone where none supervises it."""
    supervisor, children = running_supervisor(settings), running_processes(settings)
    if supervisor is None or children is None:
        processes = [{"name": "prism", "pid": os.getpid(), "state": "running", "restarts": 0, "since": _STARTED}]
    else:
        processes = [supervisor, *children]
    async with engine.begin() as conn:
        await put(conn, PREFIX + settings.host_name, {"host": settings.host_name, "processes": processes})


async def put(conn, key: str, body: dict[str, Any]) -> None:
    """Replace the row ``key`` of the console's state."""
    row = insert(state).values(key=key, body=body)
    await conn.execute(
        row.on_conflict_do_update(index_elements=[state.c.key], set_={"body": body, "at": row.excluded.at})
    )

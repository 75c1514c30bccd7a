"""Each projection's last batch (its size and apply time) and its recent commit-to-visible times, kept for status,
metrics and the console: one row per projection."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from write.schema import projection_runs as runs


async def record(
    engine: AsyncEngine,
    projection: str,
    size: int,
    seconds: float,
    visible_p50: float | None = None,
    visible_p99: float | None = None,
) -> None:
    """The last batch of ``projection`` (replacing the one before), and its recent commit-to-visible times."""
    row = insert(runs).values(
        projection=projection,
        last_batch_size=size,
        last_batch_seconds=seconds,
        visible_p50=visible_p50,
        visible_p99=visible_p99,
    )
    async with engine.begin() as conn:
        await conn.execute(
            row.on_conflict_do_update(
                index_elements=[runs.c.projection],
                set_={
                    "last_batch_size": row.excluded.last_batch_size,
                    "last_batch_seconds": row.excluded.last_batch_seconds,
                    "visible_p50": row.excluded.visible_p50,
                    "visible_p99": row.excluded.visible_p99,
                    "updated_at": func.now(),
                },
            )
        )


async def latest(conn: AsyncConnection) -> dict[str, Any]:
    """The last batch of every projection that has run, by label (rows with ``last_batch_size`` and
    ``last_batch_seconds``)."""
    return {row.projection: row for row in await conn.execute(select(runs))}

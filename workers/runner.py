"""The worker side's resources: the log engine and the projections, opened on the loop that uses them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from sqlalchemy import text

from projections.base import Projection
from workers.catch_up import Policy, Progress, catch_up


@dataclass
class Resources:
    log_engine: AsyncEngine
    projections: dict[str, Projection]
    close: Callable[[], Awaitable[None]]


class ProjectionRunner:
    """Catches projections up on demand; resources open lazily because async clients belong to one event loop."""

    def __init__(self, open_resources: Callable[[], Awaitable[Resources]], batch_size: int,
                 policies: dict[str, Policy] | None = None) -> None:
        self._open = open_resources
        self.batch_size = batch_size
        self.policies = policies or {}
        self._resources: Resources | None = None
        self._opening = asyncio.Lock()

    async def resources(self) -> Resources:
        async with self._opening:
            if self._resources is None:
                self._resources = await self._open()
                for projection in self._resources.projections.values():
                    await projection.setup()
        return self._resources

    async def catch_up(self, name: str, target: int = 0) -> Progress:
        resources = await self.resources()
        progress = await catch_up(resources.log_engine, resources.projections[name], self.batch_size, target,
                                  self.policies.get(name))
        if progress.batches:
            await record_run(resources.log_engine, progress)
        return progress

    async def close(self) -> None:
        if self._resources is not None:
            await self._resources.close()
            self._resources = None


async def record_run(engine, progress: Progress) -> None:
    """The last batch's size and apply time, for status and metrics (one row per projection)."""
    async with engine.begin() as conn:
        await conn.execute(text(
            "INSERT INTO projection_runs (projection, last_batch_size, last_batch_seconds) VALUES (:p, :n, :s) "
            "ON CONFLICT (projection) DO UPDATE SET last_batch_size = excluded.last_batch_size, "
            "last_batch_seconds = excluded.last_batch_seconds, updated_at = now()"),
            {"p": progress.projection, "n": progress.last_batch_size, "s": progress.last_batch_seconds})

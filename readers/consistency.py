"""Read-your-writes: wait (bounded) until a projection reaches the caller's position, and say what was served.

A reader that has to wait first asks the projection to apply that position now
(``ReadWait.ask``): a projection gathering commits for its freshness budget then
writes at once, so the caller waits for one batch, not for the budget, and readers
that do not ask for a position never make the projection write more often.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from fastapi import Response
from pydantic import BaseModel, Field

from write.partitions import WHOLE, Partition

#: First and largest pause between two checkpoint reads while waiting.
_FIRST_PAUSE, _MAX_PAUSE = 0.002, 0.05
#: How often a waiting reader asks again for its position to be applied now.
_ASK_AGAIN_SECONDS = 0.25


class Consistency(BaseModel):
    """Which log position the answer reflects; ``stale`` when it is behind the asked ``min_position``.

    For a projection split into partitions, the position is that of the caller's tenant's partition: every event of
    this tenant up to it has been applied (other tenants' partitions may be elsewhere)."""

    position: int = Field(description="Log position the projection had applied for this tenant when this was read")
    stale: bool = Field(False, description="True when min_position was not reached within the wait")
    min_position: int | None = None


async def _whole(_projection: str, _tenant: str) -> Partition:
    return WHOLE


@dataclass(frozen=True)
class ReadWait:
    """How long a reader may wait for ``min_position``, how it asks a projection (or a partition of it, by
    ``name/2of4``) to apply a position now (set by the application; a no-op where nothing listens), and which
    partition of the served version holds a tenant."""

    seconds: float
    ask: Callable[[str, int], Awaitable[None]]
    partition_of: Callable[[str, str], Awaitable[Partition]] = _whole


@dataclass(frozen=True)
class Served:
    position: int
    stale: bool
    min_position: int | None

    def model(self) -> Consistency:
        return Consistency(position=self.position, stale=self.stale, min_position=self.min_position)

    def json(self) -> bytes:
        """The ``Consistency`` of the answer as JSON, for answers written without a response model."""
        return orjson.dumps({"position": self.position, "stale": self.stale, "min_position": self.min_position})

    def answer(self, body: bytes) -> Response:
        """A JSON answer written without its response model (which documents it), stamped."""
        response = Response(body, media_type="application/json")
        self.stamp(response)
        return response

    def stamp(self, response: Response) -> None:
        response.headers["X-Prism-Position"] = str(self.position)
        response.headers["X-Prism-Stale"] = "true" if self.stale else "false"


async def wait_for(
    read_checkpoint: Callable[[str], Awaitable[int]],
    min_position: int | None,
    wait: ReadWait,
    projection: str,
    tenant: str,
) -> Served:
    """Ask the tenant's partition of ``projection`` to apply ``min_position`` now if it has not, then poll its
    checkpoint (``read_checkpoint(suffix)``: the partition's name after the version's, none when not split) with
    growing pauses until it reaches it or the deadline passes; the ask is repeated while waiting (a worker that was
    not yet listening, or that took the partition since, has not heard it)."""
    partition = await wait.partition_of(projection, tenant)
    projection += partition.suffix

    async def read() -> int:
        return await read_checkpoint(partition.suffix)

    position = await read()
    if min_position is None or position >= min_position:
        return Served(position, False, min_position)
    deadline, pause = time.monotonic() + wait.seconds, _FIRST_PAUSE
    await wait.ask(projection, min_position)
    asked = time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        position = await read()
        if position >= min_position:
            return Served(position, False, min_position)
        pause = min(pause * 2, _MAX_PAUSE)
        if time.monotonic() - asked >= _ASK_AGAIN_SECONDS:
            await wait.ask(projection, min_position)
            asked = time.monotonic()
    return Served(position, True, min_position)

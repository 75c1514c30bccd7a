"""Read-your-writes: wait (bounded) until a projection reaches the caller's position, and say what was served."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from fastapi import Response
from pydantic import BaseModel, Field

#: First and largest pause between two checkpoint reads while waiting.
_FIRST_PAUSE, _MAX_PAUSE = 0.002, 0.05


class Consistency(BaseModel):
    """Which log position the answer reflects; ``stale`` when it is behind the asked ``min_position``."""

    position: int = Field(description="Log position the projection had applied when this was read")
    stale: bool = Field(False, description="True when min_position was not reached within the wait")
    min_position: int | None = None


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


async def wait_for(read_checkpoint: Callable[[], Awaitable[int]], min_position: int | None, timeout: float) -> Served:
    """Poll the checkpoint with growing pauses until it reaches ``min_position`` or the deadline passes."""
    position = await read_checkpoint()
    if min_position is None or position >= min_position:
        return Served(position, False, min_position)
    deadline, pause = time.monotonic() + timeout, _FIRST_PAUSE
    while time.monotonic() < deadline:
        await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        position = await read_checkpoint()
        if position >= min_position:
            return Served(position, False, min_position)
        pause = min(pause * 2, _MAX_PAUSE)
    return Served(position, True, min_position)

"""What the work at hand is about, for every log line written while it runs.

A command names its tenant and correlation id, a worker's batch its projection,
partition and position; a log handler (``infra.logs``) copies them onto each record.
Context variables, not arguments: a line logged deep inside a store adapter or a
library still says which batch or command it belongs to, and each asyncio task and
thread sees only its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Final

_NOTHING: Final[Mapping[str, object]] = MappingProxyType({})
_current: ContextVar[Mapping[str, object]] = ContextVar("prism_log_context", default=_NOTHING)


@contextmanager
def about(
    *,
    projection: str | None = None,
    partition: str | None = None,
    position: int | None = None,
    tenant: str | None = None,
    correlation_id: uuid.UUID | None = None,
) -> Iterator[None]:
    """Name the work of this block in its log lines, on top of what an enclosing block named (None: not known)."""
    named = {
        "projection": projection,
        "partition": partition,
        "position": position,
        "tenant": tenant,
        "correlation_id": correlation_id,
    }
    token = _current.set({**_current.get(), **{name: value for name, value in named.items() if value is not None}})
    try:
        yield
    finally:
        _current.reset(token)


def current() -> Mapping[str, object]:
    """The fields named by the blocks this code runs in."""
    return _current.get()

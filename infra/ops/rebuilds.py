"""Rebuilds, rollbacks and drops of projection versions: asked for here, carried out by the workers.

The workers build the next version beside the live one and switch readers to it
once it has caught up (see ``workers.runner``); this module records the request and
watches the log-side progress, so it works whatever process holds the stores
(the embedded chDB engine allows one).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TextIO

from sqlalchemy.ext.asyncio import AsyncEngine

from projections.base import label
from projections.registry import PROJECTIONS
from workers import dead_letters, versions
from write import event_log

#: Seconds over which the rate is measured, and between two progress lines when not on a terminal.
RATE_WINDOW, PLAIN_EVERY = 5.0, 5.0
#: Seconds without any progress before the watcher says no worker seems to be running.
STALLED_AFTER = 30.0


class UnknownProjection(versions.VersionError):
    """Raised for a projection name that is not registered."""

    http_status = 404
    code = "not_found"


def known(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in PROJECTIONS]
    if unknown:
        raise UnknownProjection(f"unknown projection {', '.join(unknown)}; registered: {', '.join(PROJECTIONS)}")
    return names


async def start(engine: AsyncEngine, names: list[str], counts: dict[str, int] | None = None) -> dict[str, int]:
    """Ask for a new version of each projection, split into its count of ``counts`` (else whole); the ones already
    asked for stay as they are."""
    return {name: await versions.start_rebuild(engine, name, (counts or {}).get(name, 1)) for name in known(names)}


@dataclass
class Watched:
    name: str
    version: int
    samples: deque = field(default_factory=lambda: deque(maxlen=64))
    done: bool = False

    def rate(self) -> float:
        recent = [s for s in self.samples if s[0] >= self.samples[-1][0] - RATE_WINDOW]
        (t0, n0), (t1, n1) = recent[0], recent[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


async def watch(
    engine: AsyncEngine,
    targets: dict[str, int],
    out: TextIO = sys.stdout,
    poll: float = 0.5,
    timeout: float | None = None,
) -> bool:
    """Show each version's progress until it is live (on a terminal, a bar per projection with events/s and ETA;
    elsewhere a line every few seconds); False on a halt or timeout.

    Progress counts the log's positions (its events, numbered in commit order): the
    checkpoint of the version against the head, read from the log side each poll.
    """
    watched = [Watched(name, version) for name, version in targets.items()]
    bars = _Bars(watched, out) if out.isatty() else None
    started, last_plain, warned = time.monotonic(), 0.0, False
    try:
        while True:
            async with engine.connect() as conn:
                head = await event_log.head(conn)
                roles = {(v.projection, v.version): (v.role, v.checkpoint) for v in await versions.recorded(conn)}
                halted = await dead_letters.halted(conn)
            for w in watched:
                role, checkpoint = roles.get((w.name, w.version), (versions.NEXT, 0))
                w.done = role == versions.LIVE
                w.samples.append((time.monotonic(), head if w.done else min(checkpoint, head)))
            now = time.monotonic()
            if bars is not None:
                bars.show(head)
            elif now - last_plain >= PLAIN_EVERY or all(w.done for w in watched):
                out.write("\n".join(_line(w, head) for w in watched) + "\n")
                last_plain = now
            stuck = [w for w in watched if label(w.name, w.version) in halted]
            if all(w.done for w in watched) or stuck:
                if bars is not None:
                    bars.close()
                    bars = None
                for w in stuck:
                    out.write(f"{label(w.name, w.version)} halted at a poison event: see `prism deadletters list`\n")
                return not stuck
            if not warned and now - started > STALLED_AFTER and all(w.samples[-1][1] == 0 for w in watched):
                out.write("no progress yet: is a worker running (`prism serve` or `prism worker`)?\n")
                warned = True
            if timeout is not None and now - started > timeout:
                out.write(f"gave up watching after {timeout:.0f}s; the workers carry on\n")
                return False
            await asyncio.sleep(poll)
    finally:
        if bars is not None:
            bars.close()


class _Bars:
    """rich progress bars, one per watched version: events done of the log, events/s and time left."""

    def __init__(self, watched: list[Watched], out: TextIO) -> None:
        # Imported here: the API processes import this module for the operations routes, and never draw bars.
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )

        self.watched = watched
        self.progress = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            TaskProgressColumn(),
            MofNCompleteColumn(),
            TextColumn("events {task.fields[rate]}"),
            TimeRemainingColumn(),
            console=Console(file=out),
            transient=False,
        )
        self.tasks = [self.progress.add_task(f"{w.name} v{w.version}", total=None, rate="") for w in watched]
        self.progress.start()

    def show(self, head: int) -> None:
        for w, task in zip(self.watched, self.tasks, strict=False):
            rate = "live: readers switched" if w.done else f"{w.rate():,.0f}/s"
            self.progress.update(task, total=max(head, 1), completed=w.samples[-1][1], rate=rate)

    def close(self) -> None:
        self.progress.stop()


def _line(w: Watched, total: int) -> str:
    done = w.samples[-1][1]
    share = done / total if total else 1.0
    bar = "#" * int(share * 24) + "-" * (24 - int(share * 24))
    if w.done:
        return f"{w.name} v{w.version} [{'#' * 24}] live: readers switched"
    rate = w.rate()
    eta = f"ETA {(total - done) / rate:5.0f}s" if rate > 0 else "ETA     ?"
    return f"{w.name} v{w.version} [{bar}] {share:4.0%} {done:,}/{total:,} events {rate:,.0f} ev/s {eta}"


async def wait_dropped(engine: AsyncEngine, name: str, version: int, timeout: float = 60.0) -> bool:
    """Wait (bounded) until the workers have dropped a retiring version."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with engine.connect() as conn:
            role = await versions.role_of(conn, name, version)
        if role == versions.DROPPED:
            return True
        await asyncio.sleep(0.2)
    return False

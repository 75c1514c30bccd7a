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

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.base import label
from projections.registry import PROJECTIONS
from workers import versions

#: Seconds over which the rate is measured, and between two progress lines when not on a terminal.
RATE_WINDOW, PLAIN_EVERY = 5.0, 5.0
#: Seconds without any progress before the watcher says no worker seems to be running.
STALLED_AFTER = 30.0


class UnknownProjection(versions.VersionError):
    """Raised for a projection name that is not registered."""


def known(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in PROJECTIONS]
    if unknown:
        raise UnknownProjection(f"unknown projection {', '.join(unknown)}; registered: {', '.join(PROJECTIONS)}")
    return names


async def start(engine: AsyncEngine, names: list[str]) -> dict[str, int]:
    """Ask for a new version of each projection; the ones already asked for stay as they are."""
    return {name: await versions.start_rebuild(engine, name) for name in known(names)}


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


async def watch(engine: AsyncEngine, targets: dict[str, int], out: TextIO = sys.stdout, poll: float = 0.5,
                timeout: float | None = None) -> bool:
    """Show each version's progress (events done, events/s, ETA) until it is live; False on a halt or timeout."""
    watched = [Watched(name, version) for name, version in targets.items()]
    tty, started, last_plain, warned = out.isatty(), time.monotonic(), 0.0, False
    while True:
        async with engine.connect() as conn:
            total = await _events(conn, None)
            roles = {(r.projection, r.version): (r.role, r.checkpoint) for r in await conn.execute(text(
                "SELECT projection, version, role, checkpoint FROM projection_versions"))}
            halted = {r[0] for r in await conn.execute(text("SELECT projection FROM projection_halts"))}
            for w in watched:
                role, checkpoint = roles.get((w.name, w.version), (versions.NEXT, 0))
                w.done = role == versions.LIVE
                w.samples.append((time.monotonic(), total if w.done else await _events(conn, checkpoint)))
        lines = [_line(w, total) for w in watched]
        now = time.monotonic()
        if tty:
            out.write("\r\x1b[K" + " | ".join(lines) if len(lines) == 1 else "\x1b[K" + "\n\x1b[K".join(lines) + "\n"
                      + f"\x1b[{len(lines)}A")
            out.flush()
        elif now - last_plain >= PLAIN_EVERY or all(w.done for w in watched):
            out.write("\n".join(lines) + "\n")
            last_plain = now
        stuck = [w for w in watched if label(w.name, w.version) in halted]
        if all(w.done for w in watched) or stuck:
            if tty:
                out.write("\n" * len(lines))
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


def _line(w: Watched, total: int) -> str:
    done = w.samples[-1][1]
    share = done / total if total else 1.0
    bar = "#" * int(share * 24) + "-" * (24 - int(share * 24))
    if w.done:
        return f"{w.name} v{w.version} [{'#' * 24}] live: readers switched"
    rate = w.rate()
    eta = f"ETA {(total - done) / rate:5.0f}s" if rate > 0 else "ETA     ?"
    return f"{w.name} v{w.version} [{bar}] {share:4.0%} {done:,}/{total:,} events {rate:,.0f} ev/s {eta}"


async def _events(conn, upto: int | None) -> int:
    """Events in the log (up to a position): what "events done" counts."""
    query = "SELECT count(*) FROM events" + ("" if upto is None else " WHERE position <= :p")
    return int((await conn.execute(text(query), {"p": upto})).scalar())


async def wait_dropped(engine: AsyncEngine, name: str, version: int, timeout: float = 60.0) -> bool:
    """Wait (bounded) until the workers have dropped a retiring version."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with engine.connect() as conn:
            role = (await conn.execute(text("SELECT role FROM projection_versions WHERE projection = :p AND "
                                            "version = :v"), {"p": name, "v": version})).scalar()
        if role == versions.DROPPED:
            return True
        await asyncio.sleep(0.2)
    return False


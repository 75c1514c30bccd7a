"""Which versions of each projection exist, and what each is for.

- ``live``: the version the workers keep current and readers are served;
- ``next``: a version catching up from position 0 (a rebuild, or a rollback target); the workers switch
  readers to it once it has caught up;
- ``previous``: the version served before the last switch, kept (frozen) so a rollback can return to it;
- ``retiring``: to be dropped by the workers; ``dropped``: gone, kept as history so numbers are never reused.

A projection without rows is at version 1, live. Changes take a per-projection
transaction lock, so two operators cannot start two rebuilds of one projection.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from workers.locks import lock_key
from write.errors import PrismError

LIVE, NEXT, PREVIOUS, RETIRING, DROPPED = "live", "next", "previous", "retiring", "dropped"


@dataclass(frozen=True)
class Version:
    projection: str
    version: int
    role: str
    checkpoint: int
    created_at: datetime | None = None
    updated_at: datetime | None = None
    switched_at: datetime | None = None


class VersionError(PrismError):
    """Raised when a rebuild, rollback or drop cannot start in the projection's present state."""

    http_status = 409
    code = "conflict"


async def roles(conn: AsyncConnection, name: str) -> dict[str, int]:
    """Role → version for one projection (``live`` is 1 until a switch says otherwise)."""
    rows = await conn.execute(
        text("SELECT role, version FROM projection_versions WHERE projection = :p AND role <> 'dropped'"), {"p": name}
    )
    return {LIVE: 1} | dict(rows.tuples().all())


async def listing(engine: AsyncEngine, names: list[str]) -> list[Version]:
    """Every version not dropped, implicit first versions included, newest first per projection."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT projection, version, role, checkpoint, created_at, updated_at, switched_at "
                    "FROM projection_versions WHERE role <> 'dropped' ORDER BY projection, version DESC"
                )
            )
        ).all()
    found = [Version(*row) for row in rows]
    # Version 1 has a row only once a switch or a drop has touched it; until then it is live, a rebuild or not.
    implicit = [
        Version(name, 1, LIVE, 0)
        for name in names
        if not any(v.projection == name and (v.version == 1 or v.role == LIVE) for v in found)
    ]
    return sorted(
        found + implicit, key=lambda v: (names.index(v.projection) if v.projection in names else 99, -v.version)
    )


async def start_rebuild(engine: AsyncEngine, name: str) -> int:
    """Register a new version to catch up from position 0; returns its number."""
    async with engine.begin() as conn:
        current = await _locked_roles(conn, name)
        if NEXT in current:
            raise VersionError(f"{name} is already building version {current[NEXT]}; wait for its switch")
        newest = (
            await conn.execute(text("SELECT max(version) FROM projection_versions WHERE projection = :p"), {"p": name})
        ).scalar()
        version = (newest or 1) + 1
        await conn.execute(
            text("INSERT INTO projection_versions (projection, version, role) VALUES (:p, :v, 'next')"),
            {"p": name, "v": version},
        )
        return version


async def start_rollback(engine: AsyncEngine, name: str) -> int:
    """Make the previous version the next one: it catches up from where it stopped, then is switched back."""
    async with engine.begin() as conn:
        current = await _locked_roles(conn, name)
        if NEXT in current:
            raise VersionError(f"{name} is building version {current[NEXT]}; roll back after its switch")
        if PREVIOUS not in current:
            raise VersionError(f"{name} has no previous version to roll back to (it was dropped, or never switched)")
        await _set_role(conn, name, current[PREVIOUS], NEXT)
        return current[PREVIOUS]


async def retire_previous(engine: AsyncEngine, name: str) -> int:
    """Have the workers drop the previous version (after which no rollback is possible)."""
    async with engine.begin() as conn:
        current = await _locked_roles(conn, name)
        if PREVIOUS not in current:
            raise VersionError(f"{name} has no previous version to drop")
        await _set_role(conn, name, current[PREVIOUS], RETIRING)
        return current[PREVIOUS]


async def record_checkpoint(engine: AsyncEngine, name: str, version: int, checkpoint: int) -> None:
    """A built version's progress, and its rate since the last record (positions per second), kept for status."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE projection_versions SET build_rate = CASE WHEN :c > checkpoint AND now() > updated_at "
                "THEN (:c - checkpoint) / extract(epoch FROM now() - updated_at) ELSE build_rate END, "
                "checkpoint = :c, updated_at = now() WHERE projection = :p AND version = :v"
            ),
            {"p": name, "v": version, "c": checkpoint},
        )


async def switched(engine: AsyncEngine, name: str, version: int, checkpoint: int) -> bool:
    """Record a switch: the old previous retires, live becomes previous, ``version`` becomes live.

    False, changing nothing, when ``version`` is no longer the next one (another worker recorded it first).
    """
    async with engine.begin() as conn:
        current = await _locked_roles(conn, name)
        if current.get(NEXT) != version:
            return False
        if PREVIOUS in current:
            await _set_role(conn, name, current[PREVIOUS], RETIRING)
        await conn.execute(
            text(
                "INSERT INTO projection_versions (projection, version, role, switched_at) VALUES (:p, :v, 'previous', "
                "now()) ON CONFLICT (projection, version) DO UPDATE SET role = 'previous', updated_at = now()"
            ),
            {"p": name, "v": current[LIVE]},
        )
        await conn.execute(
            text(
                "UPDATE projection_versions SET role = 'live', checkpoint = :c, switched_at = now(), "
                "updated_at = now() WHERE projection = :p AND version = :v"
            ),
            {"p": name, "v": version, "c": checkpoint},
        )
        return True


async def dropped(engine: AsyncEngine, name: str, version: int) -> None:
    async with engine.begin() as conn:
        await _locked_roles(conn, name)
        await _set_role(conn, name, version, DROPPED)


async def _locked_roles(conn: AsyncConnection, name: str) -> dict[str, int]:
    await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(f"versions:{name}")})
    return await roles(conn, name)


async def _set_role(conn: AsyncConnection, name: str, version: int, role: str) -> None:
    await conn.execute(
        text("UPDATE projection_versions SET role = :r, updated_at = now() WHERE projection = :p AND version = :v"),
        {"p": name, "v": version, "r": role},
    )

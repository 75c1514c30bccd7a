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

from sqlalchemy import BigInteger, and_, case, extract, func, literal, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from workers.locks import lock_key
from write.errors import PrismError
from write.schema import projection_versions as versions

LIVE, NEXT, PREVIOUS, RETIRING, DROPPED = "live", "next", "previous", "retiring", "dropped"


@dataclass(frozen=True)
class Partitioned:
    """A version and the number of partitions it is split into."""

    version: int
    partitions: int = 1


@dataclass(frozen=True)
class Version:
    projection: str
    version: int
    role: str
    checkpoint: int
    created_at: datetime | None = None
    updated_at: datetime | None = None
    switched_at: datetime | None = None
    #: Positions per second while it was built, as of its last recorded checkpoint.
    build_rate: float | None = None
    #: How many partitions of the tenants it is split into (``write.partitions``), fixed when it is made.
    partitions: int = 1


class VersionError(PrismError):
    """Raised when a rebuild, rollback or drop cannot start in the projection's present state."""

    http_status = 409
    code = "conflict"


async def roles(conn: AsyncConnection, name: str) -> dict[str, int]:
    """Role → version for one projection (``live`` is 1 until a switch says otherwise)."""
    rows = await conn.execute(
        select(versions.c.role, versions.c.version).where(versions.c.projection == name, versions.c.role != DROPPED)
    )
    return {LIVE: 1} | dict(rows.all())


async def layout(conn: AsyncConnection, name: str) -> dict[str, Partitioned]:
    """Role → (version, partition count) for one projection; an implicit first version is not split."""
    rows = await conn.execute(
        select(versions.c.role, versions.c.version, versions.c.partitions).where(
            versions.c.projection == name, versions.c.role != DROPPED
        )
    )
    return {LIVE: Partitioned(1, 1)} | {role: Partitioned(version, count) for role, version, count in rows.all()}


async def live_partitions(conn: AsyncConnection) -> dict[str, int]:
    """Each recorded projection's live partition count (a projection without rows has one)."""
    found = select(versions.c.projection, versions.c.partitions).where(versions.c.role == LIVE)
    return {str(row[0]): int(row[1]) for row in (await conn.execute(found)).all()}


async def rebuilding(conn: AsyncConnection) -> set[str]:
    """The projections with a version being built (``next``) or to be dropped (``retiring``): work for a builder."""
    found = select(versions.c.projection).where(versions.c.role.in_((NEXT, RETIRING))).distinct()
    return set((await conn.execute(found)).scalars())


async def recorded(conn: AsyncConnection) -> list[Version]:
    """Every version with a row, dropped ones included (no implicit first versions)."""
    c = versions.c
    columns = (
        c.projection,
        c.version,
        c.role,
        c.checkpoint,
        c.created_at,
        c.updated_at,
        c.switched_at,
        c.build_rate,
        c.partitions,
    )
    return [Version(*row) for row in await conn.execute(select(*columns).order_by(c.projection, c.version.desc()))]


async def role_of(conn: AsyncConnection, name: str, version: int) -> str | None:
    """The role of one version, None if it has no row."""
    found = select(versions.c.role).where(versions.c.projection == name, versions.c.version == version)
    return (await conn.execute(found)).scalar()


async def listing(engine: AsyncEngine, names: list[str]) -> list[Version]:
    """Every version not dropped, implicit first versions included, newest first per projection."""
    async with engine.connect() as conn:
        found = [v for v in await recorded(conn) if v.role != DROPPED]
    # Version 1 has a row only once a switch or a drop has touched it; until then it is live, a rebuild or not.
    implicit = [
        Version(name, 1, LIVE, 0)
        for name in names
        if not any(v.projection == name and (v.version == 1 or v.role == LIVE) for v in found)
    ]
    return sorted(
        found + implicit, key=lambda v: (names.index(v.projection) if v.projection in names else 99, -v.version)
    )


async def start_rebuild(engine: AsyncEngine, name: str, partitions: int = 1) -> int:
    """Register a new version, split into ``partitions``, to catch up from position 0; returns its number."""
    async with engine.begin() as conn:
        current = await _locked_roles(conn, name)
        if NEXT in current:
            raise VersionError(f"{name} is already building version {current[NEXT]}; wait for its switch")
        newest = (
            await conn.execute(select(func.max(versions.c.version)).where(versions.c.projection == name))
        ).scalar()
        version = (newest or 1) + 1
        await conn.execute(insert(versions).values(projection=name, version=version, role=NEXT, partitions=partitions))
        return version


async def record_first(engine: AsyncEngine, counts: dict[str, int]) -> dict[str, int]:
    """Give each projection still at its implicit first version a row, split into its count of ``counts``: the first
    start decides, and every later one (on any host, whatever its settings) reads what it decided. Returns each
    projection's live partition count."""
    async with engine.begin() as conn:
        for name, partitions in counts.items():
            if (await _locked_roles(conn, name))[LIVE] == 1 and await role_of(conn, name, 1) is None:
                first = insert(versions).values(projection=name, version=1, role=LIVE, partitions=partitions)
                await conn.execute(first)
        return await live_partitions(conn)


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
        c, now = literal(checkpoint, BigInteger), func.now()
        rate = case(
            (
                and_(c > versions.c.checkpoint, now > versions.c.updated_at),
                (c - versions.c.checkpoint) / extract("epoch", now - versions.c.updated_at),
            ),
            else_=versions.c.build_rate,
        )
        await conn.execute(
            update(versions)
            .where(versions.c.projection == name, versions.c.version == version)
            .values(build_rate=rate, checkpoint=c, updated_at=now)
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
        kept = insert(versions).values(projection=name, version=current[LIVE], role=PREVIOUS, switched_at=func.now())
        await conn.execute(
            kept.on_conflict_do_update(
                index_elements=[versions.c.projection, versions.c.version],
                set_={"role": PREVIOUS, "updated_at": func.now()},
            )
        )
        await conn.execute(
            update(versions)
            .where(versions.c.projection == name, versions.c.version == version)
            .values(role=LIVE, checkpoint=checkpoint, switched_at=func.now(), updated_at=func.now())
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
        update(versions)
        .where(versions.c.projection == name, versions.c.version == version)
        .values(role=role, updated_at=func.now())
    )

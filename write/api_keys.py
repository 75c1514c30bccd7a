"""API keys: issued once in plain text, kept only as a hash, looked up by that hash.

A key reads ``prk_<id>_<secret>``: the short prefix makes a leaked key easy to recognise
(and to scan for), the id names the key in listings and revocations, and the secret carries
256 bits from the system's random source. Keys that strong need no slow hash: SHA-256 of
the whole key is what the table holds, and what a presented key is looked up by.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from write.errors import InvalidCommand, NotFound
from write.schema import api_keys, tenants

#: Every key starts with this, so that it can be recognised wherever it leaks.
PREFIX = "prk_"
#: What a tenant's key may do: send commands, read its readers, query its analytics.
TENANT_SCOPES = ("commands", "read", "analytics")
#: The scope of keys that act on every tenant's operations (audit, dead letters, rebuilds) and on none's data.
OPERATOR = "operator"
SCOPES = (*TENANT_SCOPES, OPERATOR)


@dataclass(frozen=True)
class ApiKey:
    """A key as stored: never its secret."""

    id: str
    tenant_id: str | None
    scopes: tuple[str, ...]
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def usable(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


def digest(plain: str) -> bytes:
    return hashlib.sha256(plain.encode()).digest()


def checked_scopes(tenant_id: str | None, scopes: list[str]) -> tuple[str, ...]:
    """Known scopes, operator alone and without a tenant, every other scope with one."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise InvalidCommand(
            f"scopes must be some of {', '.join(SCOPES)}; got {', '.join(unknown) or 'none'}", "scopes"
        )
    if OPERATOR in scopes and (tenant_id is not None or len(set(scopes)) > 1):
        raise InvalidCommand("an operator key has the scope operator alone and no tenant", "scopes")
    if OPERATOR not in scopes and tenant_id is None:
        raise InvalidCommand("a key of scopes other than operator needs a tenant", "tenant")
    return tuple(sorted(set(scopes), key=SCOPES.index))


async def issue(
    engine: AsyncEngine,
    tenant_id: str | None,
    scopes: list[str],
    name: str = "",
    expires_in: timedelta | None = None,
    issued_by: str | None = None,
) -> tuple[ApiKey, str]:
    """A new key and its plain text, which is shown once and never stored; ``issued_by``: the key it was issued on
    the strength of (a console session's), revoked with it."""
    allowed = checked_scopes(tenant_id, scopes)
    key_id = secrets.token_hex(6)
    plain = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    expires_at = datetime.now(UTC) + expires_in if expires_in else None
    async with engine.begin() as conn:
        if (
            tenant_id is not None
            and (await conn.execute(select(tenants.c.id).where(tenants.c.id == tenant_id))).first() is None
        ):
            raise NotFound(f"tenant {tenant_id!r} is not registered", "tenant")
        row = (
            await conn.execute(
                insert(api_keys)
                .values(
                    id=key_id,
                    secret_hash=digest(plain),
                    tenant_id=tenant_id,
                    scopes=list(allowed),
                    name=name,
                    expires_at=expires_at,
                    issued_by=issued_by,
                )
                .returning(*api_keys.c)
            )
        ).one()
    return _key(row), plain


async def lookup(engine: AsyncEngine, plain: str) -> ApiKey | None:
    """The stored key this plain text is, usable or not; None for a key that was never issued."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(api_keys).where(api_keys.c.secret_hash == digest(plain)))).first()
    return _key(row) if row is not None else None


async def listing(engine: AsyncEngine, tenant_id: str | None = None) -> list[ApiKey]:
    statement = select(api_keys).order_by(api_keys.c.created_at)
    if tenant_id is not None:
        statement = statement.where(api_keys.c.tenant_id == tenant_id)
    async with engine.connect() as conn:
        return [_key(row) for row in await conn.execute(statement)]


async def revoke(engine: AsyncEngine, key_id: str) -> ApiKey:
    """Revoke the key, and every key issued on its strength that is not revoked yet."""
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=now).returning(*api_keys.c)
            )
        ).first()
        if row is None:
            raise NotFound(f"no API key with id {key_id!r}", "id")
        await conn.execute(
            update(api_keys)
            .where(api_keys.c.issued_by == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    return _key(row)


def _key(row) -> ApiKey:
    return ApiKey(row.id, row.tenant_id, tuple(row.scopes), row.name, row.created_at, row.expires_at, row.revoked_at)

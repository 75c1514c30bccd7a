"""Who is calling: a bearer credential proves a principal (a tenant, or an operator) and what it may do.

Three kinds of credential, told apart by their form:
- an API key (``prk_…``), looked up by its hash in the write database, the embedded default;
- a signed JWT from an identity provider, when ``PRISM_JWT_*`` is configured: tenant from a
  configurable claim, scopes from ``scope`` or ``scp``;
- ``PRISM_OPERATOR_TOKEN``, kept for one release as an operator key.

The tenant of every data route comes from the principal, never from a header: ``X-Tenant-ID``
is at most a consistency check (a mismatch is 403, more than one is 400).
"""

from __future__ import annotations

import asyncio
import hmac
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine

from infra.console import session
from infra.settings import Settings
from write import api_keys
from write.api import TENANT_PATTERN
from write.api_keys import OPERATOR, PREFIX, SCOPES, TENANT_SCOPES
from write.errors import PrismError

#: Most verified credentials remembered at once; past it the memory starts again empty.
_CACHE_ENTRIES = 10_000
_TENANT_ID = re.compile(TENANT_PATTERN)

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="API key (prk_…) or JWT",
    description="`Authorization: Bearer <key>`: a key from `prism keys create` (or the one "
    "`POST /tenants` issues), or a JWT from the configured identity provider. The "
    "tenant comes from the credential; an `X-Tenant-ID` header, if sent, must name "
    "that tenant (else 403) and be sent once (else 400).",
)


class AuthError(PrismError):
    """Root of the errors raised while proving who calls; mapped to HTTP with the common error body."""

    http_status = 401
    code = "unauthenticated"
    field: str | None = None

    def __init__(self, message: str) -> None:
        super().__init__(
            message, self.field, headers={"WWW-Authenticate": "Bearer"} if self.http_status == 401 else None
        )


class Unauthenticated(AuthError):
    """Raised when the credential is missing, malformed, unknown, revoked or expired."""


class Forbidden(AuthError):
    """Raised when the credential is valid but its scopes do not allow the route, or it names another tenant."""

    http_status = 403
    code = "forbidden"


class AmbiguousTenant(AuthError):
    """Raised when a request carries ``X-Tenant-ID`` more than once (a client's header beside a gateway's)."""

    http_status = 400
    code = "bad_request"
    field = "X-Tenant-ID"


@dataclass(frozen=True)
class Principal:
    """Who a credential proves: a tenant (None for an operator), the scopes granted, and which credential."""

    tenant: str | None
    scopes: frozenset[str]
    credential: str
    #: When the credential stops working, if it says (a key's expiry, a token's ``exp``).
    expires_at: datetime | None = None
    #: The API key's id, when the credential is one.
    key_id: str | None = None


class Authenticator:
    """Turns a bearer credential into a principal; verified API keys are remembered for a few seconds."""

    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.engine, self.settings = engine, settings
        self.cache_seconds = settings.auth_cache_seconds
        self._cache: dict[bytes, tuple[float, api_keys.ApiKey | None]] = {}
        self._jwt = JwtVerifier(settings) if settings.jwt_configured else None

    async def principal(self, credential: str) -> Principal:
        if credential.startswith(PREFIX):
            return _from_key(await self._key(credential))
        if self.settings.operator_token and hmac.compare_digest(
            credential.encode(), self.settings.operator_token.encode()
        ):
            return Principal(None, frozenset({OPERATOR}), "PRISM_OPERATOR_TOKEN")
        if self._jwt is not None:
            return await self._jwt.principal(credential)
        raise Unauthenticated("the bearer credential is not a Prism API key (they start with 'prk_')")

    async def _key(self, plain: str) -> api_keys.ApiKey | None:
        digest, now = api_keys.digest(plain), time.monotonic()
        remembered = self._cache.get(digest)
        if remembered is not None and remembered[0] > now:
            return remembered[1]
        found = await api_keys.lookup(self.engine, plain)
        if self.cache_seconds > 0:
            if len(self._cache) >= _CACHE_ENTRIES:
                self._cache.clear()
            self._cache[digest] = (now + self.cache_seconds, found)
        return found


def _from_key(key: api_keys.ApiKey | None) -> Principal:
    if key is None:
        raise Unauthenticated("unknown API key")
    if key.revoked_at is not None:
        raise Unauthenticated(f"API key {key.id} was revoked")
    if not key.usable(datetime.now(UTC)):
        raise Unauthenticated(f"API key {key.id} expired")
    return Principal(key.tenant_id, frozenset(key.scopes), f"key {key.id}", key.expires_at, key.id)


class JwtVerifier:
    """Signed tokens of an identity provider, checked with PyJWT against its JWKS or one public key."""

    def __init__(self, settings: Settings) -> None:
        import jwt

        self.settings = settings
        self._jwks = jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=True) if settings.jwt_jwks_url else None

    async def principal(self, token: str) -> Principal:
        import jwt

        try:
            key = (
                (await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)).key
                if self._jwks
                else self.settings.jwt_public_key
            )
            claims = jwt.decode(
                token,
                key,
                algorithms=self.settings.jwt_algorithms,
                audience=self.settings.jwt_audience or None,
                issuer=self.settings.jwt_issuer or None,
                options={"require": ["exp"], "verify_aud": bool(self.settings.jwt_audience)},
            )
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"the token was refused: {error}") from None
        return self._principal(claims)

    def _principal(self, claims: dict[str, Any]) -> Principal:
        granted = claims.get("scope", claims.get("scp", ""))
        scopes = frozenset(granted.split() if isinstance(granted, str) else granted) & frozenset(SCOPES)
        tenant = claims.get(self.settings.jwt_tenant_claim)
        expires = datetime.fromtimestamp(claims["exp"], UTC)
        if OPERATOR in scopes:
            return Principal(None, frozenset({OPERATOR}), f"jwt {claims.get('sub', '')}", expires)
        if not isinstance(tenant, str) or not _TENANT_ID.match(tenant):
            raise Unauthenticated(f"the token has no valid tenant in its {self.settings.jwt_tenant_claim!r} claim")
        return Principal(tenant, scopes, f"jwt {claims.get('sub', '')}", expires)


Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]


def requires(*scopes: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller's principal, which must hold one of ``scopes``; it also sets the request's tenant."""
    tenant_scoped = not set(scopes) - set(TENANT_SCOPES)

    async def principal(request: Request, credentials: Credentials) -> Principal:
        if credentials is None:
            found = await console_session(request, csrf=True)
        else:
            found = await request.app.state.authenticator.principal(credentials.credentials)
        if not found.scopes & set(scopes):
            raise Forbidden(
                f"this route needs a credential with scope {' or '.join(scopes)}; "
                f"this one has {', '.join(sorted(found.scopes)) or 'none'}"
            )
        _check_tenant_header(request, found)
        if tenant_scoped and found.tenant is None:
            raise Forbidden("this route reads or changes one tenant's data: use a key of that tenant")
        request.state.principal, request.state.tenant = found, found.tenant
        return found

    return principal


async def console_session(request: Request, csrf: bool) -> Principal:
    """The principal of the request's console cookie (see ``infra.console.session``): with ``csrf``, only if the
    request also carries the session's token and comes from the console's own origin."""
    key = session.session_key(request)
    if key is None:
        raise Unauthenticated("this route needs a credential: 'Authorization: Bearer <key>'")
    if csrf and not session.csrf_matches(request, key):
        raise Forbidden(f"a console session's request needs its {session.CSRF_HEADER} token")
    if csrf and not session.same_origin(request, request.app.state.settings.console_origins):
        raise Forbidden("a console session's request came from another site")
    return await request.app.state.authenticator.principal(key)


def _check_tenant_header(request: Request, found: Principal) -> None:
    named = request.headers.getlist("x-tenant-id")
    if len(named) > 1:
        raise AmbiguousTenant("X-Tenant-ID was sent more than once; the tenant comes from the credential")
    if named and found.tenant is not None and named[0] != found.tenant:
        raise Forbidden("X-Tenant-ID names another tenant than the credential's")

"""A console sign-in: an operator key of its own, short-lived, in a cookie no other site can use.

Signing in with an operator credential issues a session key (an API key with the operator scope that expires with
the session, revoked at sign-out), held in an ``HttpOnly``, ``SameSite=Strict`` cookie: never in a URL, a page or
a script. A request authenticated by the cookie alone must also carry the session's CSRF token in a header, which a
page of another site can neither read nor send, so the console's calls to the operations API cannot be replayed
from elsewhere; only the console's own pages and files, which change nothing, load on the cookie alone.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import timedelta
from urllib.parse import urlsplit

from fastapi import Request, Response
from sqlalchemy.ext.asyncio import AsyncEngine

from write import api_keys
from write.api_keys import OPERATOR, PREFIX

COOKIE = "prism_console"
CSRF_HEADER = "X-Prism-CSRF"
#: The cookie's path: the console's pages and every API route its script calls.
COOKIE_PATH = "/"


def csrf_token(session_key: str) -> str:
    """The token the console's script sends with every call: bound to the session, derivable only with its key."""
    return hmac.new(session_key.encode(), b"prism console csrf", hashlib.sha256).hexdigest()


def session_key(request: Request) -> str | None:
    """The session key of the request's console cookie, if it has one of the right form."""
    found = request.cookies.get(COOKIE)
    return found if found and found.startswith(PREFIX) else None


def csrf_matches(request: Request, key: str) -> bool:
    sent = request.headers.get(CSRF_HEADER, "")
    return hmac.compare_digest(sent.encode(), csrf_token(key).encode())


def same_origin(request: Request, also: Sequence[str] = ()) -> bool:
    """A browser's POST names its page's origin; one from another site is refused even before its credential.
    The host is compared, not the scheme (behind a proxy that ends TLS, the page is https and the request here http);
    ``also`` names the origins a proxy that rewrites ``Host`` serves the console on."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser's cross-site request (browsers send Origin with every POST)
    return urlsplit(origin).netloc == request.headers.get("host", "") or origin in also


#: A session key's name starts so: it cannot sign in again (a session would outlive its own expiry).
SESSION_NAME = "console session"


async def open_session(engine: AsyncEngine, signed_in_with: str, lasts: timedelta, key_id: str | None) -> str:
    """A new session key, lasting ``lasts``, for an operator who proved themselves with ``signed_in_with`` (the key
    ``key_id``, if a key: revoking it revokes the session)."""
    _, plain = await api_keys.issue(
        engine, None, [OPERATOR], f"{SESSION_NAME} ({signed_in_with})", lasts, issued_by=key_id
    )
    return plain


async def is_session_key(engine: AsyncEngine, credential: str) -> bool:
    if not credential.startswith(PREFIX):
        return False
    found = await api_keys.lookup(engine, credential)
    return found is not None and found.name.startswith(SESSION_NAME)


async def close_session(engine: AsyncEngine, key: str) -> None:
    """Revoke the session's key (its id is the part between the prefix and the secret)."""
    await api_keys.revoke(engine, key.removeprefix(PREFIX).split("_", 1)[0])


def set_cookie(response: Response, request: Request, key: str, lasts: timedelta, secure: bool) -> None:
    response.set_cookie(
        COOKIE,
        key,
        max_age=int(lasts.total_seconds()),
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=secure or request.url.scheme == "https",
    )


def clear_cookie(response: Response, request: Request, secure: bool) -> None:
    response.delete_cookie(
        COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict", secure=secure or request.url.scheme == "https"
    )

"""Routes that need the embedded ClickHouse, handed by an API process to the process that owns the engine.

chDB opens a data path in one process only. Under ``prism serve`` that process (the
owner) runs the analytics projection and the whole app on a Unix socket; an API
process forwards it, streamed both ways, every request whose answer reads the
engine: analytics, and the operations that read every store's checkpoint. The owner
checks credentials as for any request; the public surface stays one port.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import APIRouter
from starlette.responses import JSONResponse
from starlette.routing import Match

from infra.http.error_body import error_body
from write.errors import StoreUnavailable

#: Headers that belong to one connection, not to the request or answer they travel with.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)


@dataclass(frozen=True)
class Deadlines:
    """How long to wait for the owner's answer to start, and stream: ``default`` seconds, or per path (None: no
    limit, for operations that sweep every store)."""

    default: float | None = None
    paths: Mapping[str, float | None] = field(default_factory=dict)

    def of(self, path: str) -> float | None:
        return self.paths.get(path, self.default)


#: A Unix socket connects at once or not at all.
CONNECT_SECONDS = 2.0


class ToOwner:
    """ASGI middleware: requests for the routes of ``routers`` go to the owner over its socket, the rest to the app.

    An owner that is gone (killed, not started again yet) or does not answer within the path's deadline (hung) is
    the analytics store being unavailable: 503 with Retry-After, like any store.
    """

    def __init__(
        self, app: Any, socket_path: str, routers: Iterable[APIRouter], deadlines: Deadlines | None = None
    ) -> None:
        self.app, self.socket_path = app, socket_path
        self.deadlines = deadlines or Deadlines()
        self.routes = [route for router in routers for route in router.routes]
        self._client: httpx.AsyncClient | None = None

    def owned(self, scope: dict) -> bool:
        """Whether the path is one of the owner's routes (whatever the method: the owner answers 405 itself)."""
        return any(route.matches(scope)[0] is not Match.NONE for route in self.routes)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.owned(scope):
            await self.app(scope, receive, send)
            return
        try:
            response = await self.client.send(self._request(scope, receive), stream=True)
        except httpx.TransportError as error:
            await _unavailable(f"its process does not answer: {type(error).__name__}")(scope, receive, send)
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [(k, v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP],
                }
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()

    @property
    def client(self) -> httpx.AsyncClient:
        """One kept client per process, made on the loop that uses it."""
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=httpx.AsyncHTTPTransport(uds=self.socket_path),
                base_url="http://owner",
                timeout=httpx.Timeout(None, connect=CONNECT_SECONDS),
                limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
            )
        return self._client

    def _request(self, scope: dict, receive: Any) -> httpx.Request:
        headers = [(k, v) for k, v in scope["headers"] if k not in HOP_BY_HOP]
        has_body = any(k in (b"content-length", b"transfer-encoding") for k, _ in scope["headers"])
        url = httpx.URL(path=scope["path"], query=scope["query_string"])
        deadline = self.deadlines.of(scope["path"])
        return self.client.build_request(
            scope["method"],
            url,
            headers=headers,
            content=_body(receive) if has_body else None,
            timeout=httpx.Timeout(deadline, connect=CONNECT_SECONDS),
        )


def _unavailable(reason: str) -> JSONResponse:
    error = StoreUnavailable("clickhouse", reason)
    return JSONResponse(
        error_body(error.http_status, error.code, error.message), status_code=error.http_status, headers=error.headers
    )


async def _body(receive: Any) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return

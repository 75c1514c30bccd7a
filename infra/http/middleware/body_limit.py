"""A cap on request bodies, as pure ASGI middleware, so no route ever holds more than ``max_bytes`` of one.

A declared ``Content-Length`` past the cap is refused before the app sees the request; a chunked body (no
length) is counted while it streams in and refused as soon as it passes the cap, the app being told the
client is gone. The refusal is a 413 in the standard error shape.

Before answering, the rest of the body is read and dropped, up to ``LINGER_BYTES`` (nginx's "lingering
close"): a client that is still sending when the server closes gets a connection reset instead of the 413.
Past that the 413 goes out with ``Connection: close`` and the rest is never read. Nothing is kept either way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infra.http.error_body import error_body

#: Default cap: commands are small JSON documents (an order of 100 lines is about 10 KB).
DEFAULT_MAX_BYTES = 1024 * 1024
#: Most bytes past the cap read (and dropped) so that the client can finish sending and read the 413.
LINGER_BYTES = 8 * 1024 * 1024


@dataclass
class _Exchange:
    """What one request has done so far."""

    received: int = 0
    over: bool = False  # the body passed the cap: from then on the app sees the client gone
    started: bool = False  # an answer has begun, the app's or the 413
    refused: bool = False  # the 413 went out: whatever the app answers is dropped


class BodyLimit:
    """Answers 413 ``too_large`` for request bodies over ``max_bytes``, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, exchange = _content_length(scope), _Exchange()
        if declared is not None and declared > self.max_bytes:
            drained = declared <= LINGER_BYTES and await _drain(receive)
            await self._refuse(send, exchange, close=not drained)
            return
        if declared is not None or not _chunked(scope):
            # The HTTP server holds a body to its declared length, and one without a length or chunking is
            # empty: only a chunked body has to be counted (and the reads, most of them bodiless, stay direct).
            await self.app(scope, receive, send)
            return
        await self.app(scope, self._counting(receive, send, exchange), _guarded(send, exchange))

    def _counting(self, receive: Receive, send: Send, exchange: _Exchange) -> Receive:
        async def counted() -> Message:
            if exchange.over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                exchange.received += len(message.get("body", b""))
                if exchange.received > self.max_bytes:
                    exchange.over = True
                    drained = not message.get("more_body", False) or await _drain(receive)
                    await self._refuse(send, exchange, close=not drained)
                    return {"type": "http.disconnect"}
            return message

        return counted

    async def _refuse(self, send: Send, exchange: _Exchange, close: bool) -> None:
        """Answer the 413, unless the app has already begun an answer (then it only sees the client gone)."""
        if exchange.started:
            return
        exchange.started = exchange.refused = True
        message = f"the request body is over the limit of {self.max_bytes} bytes"
        body = json.dumps(error_body(413, "too_large", message)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": headers + ([(b"connection", b"close")] if close else []),
            }
        )
        await send({"type": "http.response.body", "body": body})


def _guarded(send: Send, exchange: _Exchange) -> Send:
    async def guarded(message: Message) -> None:
        if exchange.refused:
            return
        exchange.started = True
        await send(message)

    return guarded


async def _drain(receive: Receive) -> bool:
    """Read and drop the rest of the body, up to ``LINGER_BYTES``; True when it all came."""
    dropped = 0
    while dropped <= LINGER_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return False
        dropped += len(message.get("body", b""))
        if not message.get("more_body", False):
            return True
    return False


def _content_length(scope: Scope) -> int | None:
    """The declared length, or None without a valid one (the server itself refuses malformed ones)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _chunked(scope: Scope) -> bool:
    return any(name == b"transfer-encoding" and b"chunked" in value.lower() for name, value in scope["headers"])

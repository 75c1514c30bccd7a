"""An idle keep-alive connection outlives the clients' own idle expiry, so their next request never meets a close."""

from __future__ import annotations

import asyncio
from urllib.parse import urlparse

REQUEST = b"GET /health HTTP/1.1\r\nHost: prism\r\nConnection: keep-alive\r\n\r\n"
#: Longer than httpx keeps an idle connection (5 s), and than uvicorn's default keep-alive (also 5 s).
IDLE_SECONDS = 6


async def _status(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """One request on the connection; its status line (the body is read, so the connection is ready again)."""
    writer.write(REQUEST)
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    await reader.readexactly(length)
    return head.split(b"\r\n")[0]


async def test_a_connection_idle_longer_than_httpx_keeps_one_still_serves_the_next_request(server):
    address = urlparse(server)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        assert await _status(reader, writer) == b"HTTP/1.1 200 OK"
        await asyncio.sleep(IDLE_SECONDS)  # the idle period under test, not a wait for something to happen
        assert await _status(reader, writer) == b"HTTP/1.1 200 OK"  # a closed connection: IncompleteReadError
    finally:
        writer.close()

"""The readers' HTTP floor: a bare ASGI app, served by uvicorn as ``prism serve``'s API processes are (as many, on
one shared listening socket, the same options), that makes an order page's and a customer dashboard's store read and
answers the same bytes as their readers, with nothing else around them: no framework, no credential check, no
validation, no SQLAlchemy.

A reader's req/s over the floor's, at the same clients in the same run, is what Prism's
own code costs above the HTTP server and the store's driver.

Run as ``python -m infra.bench.http_floor FD TENANT`` on an inherited listening socket.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson
import uvicorn

from infra import sandbox
from infra.bootstrap import asyncpg_dsn, close_stores, open_stores
from infra.processes.entrypoints import KEEP_ALIVE_SECONDS
from infra.settings import Settings
from projections.layouts.customer_dashboards import Tables
from projections.layouts.order_summaries import ServedReader
from readers.consistency import Served
from readers.customer_dashboards import last_months, served_dashboard_sql

_JSON = [(b"content-type", b"application/json")]
_ORDERS, _CUSTOMERS, _DASHBOARD = "/orders/", "/customers/", "/dashboard"


def _consistency(position: int) -> bytes:
    return Served(position, False, None).json()


def _headers(position: int) -> list[tuple[bytes, bytes]]:
    return [*_JSON, (b"x-prism-position", str(position).encode()), (b"x-prism-stale", b"false")]


def dashboard_body(row: Any) -> bytes:
    """The customer dashboard reader's answer from its row (asyncpg hands json columns over as text)."""

    def parsed(value: Any) -> Any:
        return orjson.loads(value) if isinstance(value, str) else value

    return orjson.dumps(
        {
            "customer_id": str(row["customer_id"]),
            "name": row["name"],
            "email": row["email"],
            "orders": {
                "total": row["order_count"],
                "pending": row["pending_count"],
                "confirmed": row["confirmed_count"],
                "shipped": row["shipped_count"],
                "cancelled": row["cancelled_count"],
            },
            "lifetime_value": row["lifetime_value"],
            "average_order_value": row["average_order_value"],
            "last_order_at": row["last_order_at"].isoformat() if row["last_order_at"] else None,
            "spend_by_month": last_months(parsed(row["spend_by_month"]), datetime.now(UTC)),
            "top_products": parsed(row["top_products"]),
            "last_order": parsed(row["last_order"]),
            "consistency": orjson.Fragment(_consistency(int(row["served_position"] or 0))),
        }
    )


class FloorApp:
    """The two reads, routed by hand; ``/ready`` once the store clients are open."""

    def __init__(self, settings: Settings, tenant: str) -> None:
        self.settings, self.tenant = settings, tenant
        # The reader's statement with asyncpg's numbered parameters in place of SQLAlchemy's named ones.
        sql = served_dashboard_sql(Tables(settings.namespace))
        numbered = re.sub(r"(?<!:):t\b", "$2", re.sub(r"(?<!:):c\b", "$1", sql))
        self.dashboard_sql = re.sub(r"(?<!:):part\b", "$3", numbered)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        status, headers, body = await self._route(scope["path"])
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.stores = await open_stores(self.settings, only=("redis",))
                self.orders = ServedReader(self.stores.redis, self.settings.namespace)
                self.pg = await asyncpg.create_pool(asyncpg_dsn(self.settings.dashboards_database_url), max_size=16)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.pg.close()
                await close_stores(self.stores)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _route(self, path: str) -> tuple[int, list, bytes]:
        if path.startswith(_ORDERS):
            return await self._order(path[len(_ORDERS) :])
        if path.startswith(_CUSTOMERS) and path.endswith(_DASHBOARD):
            return await self._dashboard(path[len(_CUSTOMERS) : -len(_DASHBOARD)])
        if path == "/ready":
            return 200, _JSON, b"{}"
        return 404, _JSON, b'{"error":"not found"}'

    async def _order(self, order_id: str) -> tuple[int, list, bytes]:
        position, doc = await self.orders.order(order_id)
        if doc is None or orjson.loads(doc)["tenant_id"] != self.tenant:
            return 404, _JSON, b'{"error":"not found"}'
        return 200, _headers(position), doc[:-1] + b',"consistency":' + _consistency(position) + b"}"

    async def _dashboard(self, customer_id: str) -> tuple[int, list, bytes]:
        row = await self.pg.fetchrow(self.dashboard_sql, uuid.UUID(customer_id), self.tenant, "")  # a bench: not split
        if row is None or row["customer_id"] is None:
            return 404, _JSON, b'{"error":"not found"}'
        return 200, _headers(int(row["served_position"] or 0)), dashboard_body(row)


def main(fd: int, tenant: str) -> None:
    """One floor process, as ``prism api --fd`` is one API process."""
    server = uvicorn.Server(
        uvicorn.Config(FloorApp(Settings(), tenant), log_level="warning", timeout_keep_alive=KEEP_ALIVE_SECONDS)
    )
    server.run(sockets=[socket.socket(fileno=fd)])


@asynccontextmanager
async def floor_server(settings: Settings, tenant: str, timeout: float = 60.0):
    """``api_processes`` floor processes on a listening socket of their own; yields its base URL once ready."""
    port = sandbox.free_port()
    listener = socket.create_server((settings.api_host, port), backlog=2048)
    listener.set_inheritable(True)
    fd = listener.fileno()
    children = [
        subprocess.Popen(  # noqa: ASYNC220  # starting a process does not wait for it
            [sys.executable, "-m", "infra.bench.http_floor", str(fd), tenant],
            env=settings.child_environment(),
            pass_fds=(fd,),
            stdin=subprocess.DEVNULL,
        )
        for _ in range(settings.api_processes)
    ]
    base = f"http://{settings.api_host}:{port}"
    try:
        await _ready(base, children, timeout)
        yield base
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                await asyncio.to_thread(child.wait, 20)
            except subprocess.TimeoutExpired:
                child.kill()
        listener.close()


async def _ready(base: str, children: list[subprocess.Popen], timeout: float) -> None:
    """Every floor process answering: one asks of the shared socket could reach any, so wait for all to start."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with httpx.AsyncClient(timeout=2) as client:
        ready = 0
        while ready < 2 * len(children):  # several answers in a row: the later processes have had their start
            if any(child.poll() is not None for child in children) or loop.time() > deadline:
                raise RuntimeError("the readers' HTTP floor did not start")
            try:
                ready = ready + 1 if (await client.get(f"{base}/ready")).status_code == 200 else 0
            except httpx.TransportError:
                ready = 0
                await asyncio.sleep(0.1)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])

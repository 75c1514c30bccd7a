"""The write path's floor: PlaceOrder's own statements sent by raw asyncpg, beside Prism in the same run.

Same database server, a scratch copy of the write schema holding the bench tenant's
customers and products, the same clients and seconds. Each order is what PlaceOrder
sends: one transaction with the customer and the products read ``FOR SHARE`` (products
in id order), the order row with its item rows (the write side's own statement), and
the event staged by the write side's own statement (appended under the lock at COMMIT
by the schema's trigger), then the position read back after the commit.
What Prism adds on top (HTTP, validation, the domain, SQLAlchemy) is the gap between
the two figures.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg

from infra import sandbox
from infra.bench.load import summary
from infra.bootstrap import asyncpg_dsn
from infra.settings import Settings
from write import event_log, repository
from write import events as e
from write.migrate import upgrade


def _positional(statement) -> tuple[str, list[str]]:
    """A write-side statement in asyncpg's ``$n`` form, and the names of its parameters in order."""
    compiled = statement.compile(dialect=PGDialect_asyncpg())
    return compiled.string, list(compiled.positiontup)


class Floor:
    """A scratch write database with one tenant's customers and products, and PlaceOrder's statements on it."""

    def __init__(self, settings: Settings, tenant: str) -> None:
        self.url = settings.write_database_url + "_floor"
        self.dsn = asyncpg_dsn(self.url)
        self.source, self.tenant = settings.write_database_url, tenant
        self.stage_sql, self.stage_names = _positional(event_log.STAGE)
        self.add_order_sql, self.add_order_names = _positional(repository.ADD_ORDER)
        self.customers: list[asyncpg.Record] = []
        self.products: list[uuid.UUID] = []

    async def prepare(self) -> None:
        await sandbox.recreate_database(self.url)
        await asyncio.to_thread(upgrade, self.url)
        source, scratch = await asyncpg.connect(asyncpg_dsn(self.source)), await asyncpg.connect(self.dsn)
        try:
            for table in ("tenants", "customers", "products"):
                column = "id" if table == "tenants" else "tenant_id"
                rows = await source.fetch(f"SELECT * FROM {table} WHERE {column} = $1", self.tenant)
                await scratch.copy_records_to_table(
                    table, records=[tuple(r.values()) for r in rows], columns=list(rows[0].keys())
                )
            self.customers = await scratch.fetch("SELECT id FROM customers WHERE tenant_id = $1", self.tenant)
            self.products = [
                r["id"] for r in await scratch.fetch("SELECT id FROM products WHERE tenant_id = $1", self.tenant)
            ]
        finally:
            await source.close()
            await scratch.close()

    async def closed_loop(self, clients: int, seconds: float, rng: random.Random) -> dict:
        """``clients`` connections placing orders back to back for ``seconds``: orders/s and latency."""
        connections = [await asyncpg.connect(self.dsn) for _ in range(clients)]
        latencies: list[float] = []
        errors = 0
        deadline = time.monotonic() + seconds

        async def client(conn: asyncpg.Connection) -> None:
            nonlocal errors
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    await self.place_order(conn, rng)
                except asyncpg.PostgresError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)

        try:
            await asyncio.gather(*(client(conn) for conn in connections))
        finally:
            for conn in connections:
                await conn.close()
        return summary(latencies, seconds, errors)

    async def place_order(self, conn: asyncpg.Connection, rng: random.Random) -> None:
        customer_id = rng.choice(self.customers)["id"]
        wanted = rng.sample(self.products, 3)
        quantities = {pid: rng.randint(1, 4) for pid in wanted}
        async with conn.transaction():
            buyer = await conn.fetchrow(
                "SELECT * FROM customers WHERE id = $1 AND tenant_id = $2 FOR SHARE", customer_id, self.tenant
            )
            goods = await conn.fetch(
                "SELECT * FROM products WHERE id = ANY($1::uuid[]) AND tenant_id = $2 ORDER BY id FOR SHARE",
                sorted(wanted),
                self.tenant,
            )
            order_id, now = uuid.uuid4(), datetime.now(UTC)
            lines = [(order_id, n, p["id"], quantities[p["id"]], p["price"]) for n, p in enumerate(goods, start=1)]
            total = sum((price * quantity for *_, quantity, price in lines), Decimal(0))
            placed = {
                "id": order_id,
                "tenant_id": self.tenant,
                "customer_id": customer_id,
                "placed_at": now,
                "status": "pending",
                "subtotal": total,
                "discount_percent": Decimal(0),
                "discount": Decimal(0),
                "total": total,
                "version": 1,
                "line_no": [n for _, n, *_ in lines],
                "product_id": [pid for _, _, pid, *_ in lines],
                "quantity": [q for *_, q, _ in lines],
                "unit_price": [price for *_, price in lines],
            }
            await conn.execute(self.add_order_sql, *(placed.get(name) for name in self.add_order_names))
            payload = {
                "order": {
                    "order_id": str(order_id),
                    "status": "pending",
                    "placed_at": now.isoformat(),
                    "total": str(total),
                    "customer": {"id": str(buyer["id"]), "name": buyer["name"], "email": buyer["email"]},
                    "items": [
                        {
                            "line_no": n,
                            "product_id": str(pid),
                            "name": p["name"],
                            "quantity": q,
                            "unit_price": str(price),
                        }
                        for (_, n, pid, q, price), p in zip(lines, goods, strict=True)
                    ],
                },
                "shipping_address": None,
            }
            event_id = uuid.uuid4()
            values = {
                "event_id": [event_id],
                "tenant_id": [self.tenant],
                "aggregate_type": [e.ORDER],
                "aggregate_id": [order_id],
                "aggregate_version": [1],
                "type": [e.ORDER_PLACED],
                "schema_version": [e.schema_version(e.ORDER_PLACED)],
                "payload": [json.dumps(payload)],
                "correlation_id": [uuid.uuid4()],
                "causation_id": [None],
            }
            await conn.execute(self.stage_sql, *(values[name] for name in self.stage_names))
        await conn.fetchval(event_log.POSITION_OF, event_id)  # the answer's position, as a command learns it

    async def drop(self) -> None:
        await sandbox.drop_database(self.url)

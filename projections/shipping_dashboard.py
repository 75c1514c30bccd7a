"""The shipping dashboard in Postgres (the dashboards database): one row per order with what logistics reads, its
status, destination (country and city), item count and when it was confirmed and shipped.

A batch is folded in Python to each order's newest row and written in one
multi-row upsert, guarded by position, with the checkpoint in the same transaction.
Only OrderPlaced carries the shipping address, and batches may come out of order or
twice: the address columns are set whenever the incoming row carries the OrderPlaced
and the stored row has none applied yet, whatever the positions; the other columns
only when the incoming row is newer. An order without an address (or placed before
addresses were recorded) has country NULL, "unknown" to readers.

Each version has a table of its own; readers query the views ``shipping_orders`` and
``shipping_checkpoint``, which ``serve`` renames into place in one transaction.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.base import Batch, Projection, forget_and_apply
from projections.layouts import postgres_views
from projections.layouts.shipping_dashboard import PROJECTION, Tables, read_checkpoint
from projections.stores.clients import Stores
from write import events as e
from write.events import StoredEvent
from write.facts import TenantFacts, utc_iso
from write.partitions import WHOLE, Partition

#: The columns a batch writes, with the Postgres type each array is cast to.
_COLUMNS = {
    "order_id": "uuid",
    "tenant_id": "text",
    "status": "text",
    "country": "text",
    "city": "text",
    "item_count": "integer",
    "placed_at": "timestamptz",
    "confirmed_at": "timestamptz",
    "shipped_at": "timestamptz",
    "position": "bigint",
    "addressed": "boolean",
}
_ADDRESS = ("country", "city")
_NEWER = [c for c in _COLUMNS if c not in ("order_id", "position", "addressed", *_ADDRESS)]


def latest_rows(events: list[StoredEvent]) -> list[dict[str, Any]]:
    """Each order's newest state in the batch, with the address of its OrderPlaced if the batch holds it."""
    rows: dict[str, dict[str, Any]] = {}
    for ev in sorted(events, key=lambda ev: ev.position):
        if ev.type not in e.ORDER_EVENTS:
            continue
        o = ev.payload["order"]
        row = rows.setdefault(o["order_id"], {"country": None, "city": None, "addressed": False})
        row.update(
            order_id=o["order_id"],
            tenant_id=ev.tenant_id,
            status=o["status"],
            item_count=sum(item["quantity"] for item in o["items"]),
            placed_at=o["placed_at"],
            confirmed_at=o["confirmed_at"],
            shipped_at=o["shipped_at"],
            position=ev.position,
        )
        if ev.type == e.ORDER_PLACED:
            address = ev.payload.get("shipping_address") or {}
            row.update(country=address.get("country"), city=address.get("city"), addressed=True)
    return list(rows.values())


def upsert_sql(table: str) -> str:
    """One statement of column arrays, whatever the number of rows: the newer columns when newer, the address
    when the stored row has none applied yet."""
    arrays = ", ".join(
        f"CAST(:{col} AS text[])" + ("" if kind == "text" else f"::{kind}[]")
        if kind in ("uuid", "text", "timestamptz")
        else f"CAST(:{col} AS {kind}[])"
        for col, kind in _COLUMNS.items()
    )
    newer = "t.position < excluded.position"
    fills = "excluded.addressed AND NOT t.addressed"
    sets = [f"{col} = CASE WHEN {newer} THEN excluded.{col} ELSE t.{col} END" for col in _NEWER]
    sets += [f"{col} = CASE WHEN {fills} THEN excluded.{col} ELSE t.{col} END" for col in _ADDRESS]
    sets += ["addressed = t.addressed OR excluded.addressed", "position = greatest(t.position, excluded.position)"]
    return (
        f"INSERT INTO {table} AS t ({', '.join(_COLUMNS)}) SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT (order_id) DO UPDATE SET {', '.join(sets)} WHERE {newer} OR ({fills})"
    )


class ShippingDashboard(Projection):
    """Projection of order events into one row per order: what waits to ship, where to, and what shipped."""

    name: ClassVar[str] = PROJECTION
    store: ClassVar[str] = "dashboards"
    handles: ClassVar[frozenset[str]] = e.ORDER_EVENTS

    def __init__(self, stores: Stores, version: int = 1, partition: Partition = WHOLE) -> None:
        super().__init__(stores, version, partition)
        self.engine = stores.dashboards
        self.tables = Tables(stores.namespace, version, partition)

    async def setup(self) -> None:
        await postgres_views.set_up(self.engine, self.tables.schema, self._create)

    async def _create(self, conn: AsyncConnection) -> None:
        await postgres_views.apply_ddl(conn, self.tables.ddl())
        await postgres_views.create_unserved(conn, self.tables.views())
        await postgres_views.upgrade_checkpoint_view(conn, self.tables.served_checkpoint, self.tables.version_key)

    async def checkpoint(self) -> int:
        return await read_checkpoint(self.engine, self.tables)

    async def apply(self, batch: Batch) -> None:
        rows = latest_rows(batch.events)
        async with self.engine.begin() as conn:
            if rows:
                await conn.execute(
                    postgres_views.statement(upsert_sql(self.tables.orders)),
                    {col: [row[col] for row in rows] for col in _COLUMNS},
                )
            await postgres_views.move_checkpoint(conn, self.tables.schema, self.tables.checkpoint_key, batch.upto)

    async def serve(self) -> None:
        """Staged views renamed into place in one transaction: readers see the old version or this one."""
        await postgres_views.switch(self.engine, self.tables.views())

    async def is_served(self) -> bool:
        return await postgres_views.serves(self.engine, self.tables.served_checkpoint, self.tables.version_key)

    async def drop(self) -> None:
        async with self.engine.begin() as conn:
            await postgres_views.lock_schema(conn, self.tables.schema)
            for statement in postgres_views.base_ddl(self.tables.schema):  # they may not exist yet
                await conn.execute(text(statement))
            await conn.execute(text(f"DROP TABLE IF EXISTS {self.tables.orders} CASCADE"))  # with the views
            await postgres_views.forget_checkpoint(conn, self.tables.schema, self.tables.version_key)

    async def fingerprints(self, tenant: str) -> dict[str, tuple]:
        """The tenant's orders: status, country, city, item count, confirmed and shipped times, by order."""
        sql = (
            f"SELECT order_id::text, status, country, city, item_count, confirmed_at, shipped_at "
            f"FROM {self.tables.orders} WHERE tenant_id = :t"
        )
        async with self.engine.connect() as conn:
            return {
                r[0]: (r[1], r[2], r[3], r[4], utc_iso(r[5]), utc_iso(r[6]))
                for r in await conn.execute(text(sql), {"t": tenant})
            }

    @staticmethod
    def expected(facts: TenantFacts) -> dict[str, tuple]:
        """Every order, with where it ships (None when it has no address) and its item count and times."""
        return {
            o.id: (o.status, o.shipping_country, o.shipping_city, o.item_count, o.confirmed_at, o.shipped_at)
            for o in facts.orders.values()
        }

    async def state(self) -> dict[str, Any]:
        """The table's rows, by its name less the schema and version."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(text(f"SELECT * FROM {self.tables.orders} ORDER BY order_id"))
            return {"ship_orders": [tuple(r) for r in rows]}

    async def repair(self, order_ids: list[str], customer_ids: list[str], events: list[StoredEvent]) -> None:
        await forget_and_apply(self, order_ids, customer_ids, events)

    async def forget(self, order_ids: list[str], customer_ids: list[str]) -> None:
        if order_ids:
            async with self.engine.begin() as conn:
                await conn.execute(
                    text(f"DELETE FROM {self.tables.orders} WHERE order_id = ANY(:ids)"),
                    {"ids": [uuid.UUID(i) for i in order_ids]},
                )

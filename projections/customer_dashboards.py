"""Customer dashboards in Postgres (the dashboards database): one precomputed row per customer.

Source rows (one per customer, one per order) are upserted only when newer
(``WHERE position < excluded.position``); each touched customer's dashboard row is
then recomputed from them in the same transaction as the checkpoint. Recomputing
instead of incrementing is what makes a replayed batch unable to double-count.

Each version has tables of its own; readers query the views ``customer_dashboards``
and ``customer_dashboards_checkpoint``, which ``serve`` renames into place in one
transaction.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, ClassVar

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.base import Batch, forget_and_apply, label
from projections.layouts.customer_dashboards import Tables, read_checkpoint
from projections.layouts.stores import Stores
from write import events as e
from write.events import StoredEvent


log = logging.getLogger("prism.customer_dashboards")
#: The Postgres type of each source column; an upsert sends ``text`` arrays of the others and casts them.
_COLUMN_TYPES = {"customer_id": "uuid", "order_id": "uuid", "product_id": "uuid", "tenant_id": "text",
                 "name": "text", "email": "text", "status": "text", "total": "numeric", "line_total": "numeric",
                 "placed_at": "timestamptz", "line_no": "smallint", "quantity": "integer", "position": "bigint"}


# Rows keep the payload's text (ids, money, times): Postgres parses it in the upsert's casts, far
# cheaper than building UUID, Decimal and datetime objects in Python for every line of every order.

def latest_customers(events: list[StoredEvent]) -> list[dict[str, Any]]:
    """The newest state of each customer in the batch."""
    rows = {ev.payload["customer_id"]: {
        "customer_id": ev.payload["customer_id"], "tenant_id": ev.tenant_id, "name": ev.payload["name"],
        "email": ev.payload["email"], "position": ev.position} for ev in events if ev.type in e.CUSTOMER_EVENTS}
    return list(rows.values())


def latest_products(events: list[StoredEvent]) -> list[dict[str, Any]]:
    """The newest name of each product in the batch (top products show today's names)."""
    rows = {ev.payload["product_id"]: {"product_id": ev.payload["product_id"], "tenant_id": ev.tenant_id,
                                       "name": ev.payload["name"], "position": ev.position}
            for ev in events if ev.type in e.PRODUCT_EVENTS}
    return list(rows.values())


def latest_lines(events: list[StoredEvent]) -> list[dict[str, Any]]:
    """The lines of each order as of its newest event in the batch."""
    rows = {}
    for ev in events:
        if ev.type in e.ORDER_EVENTS:
            o = ev.payload["order"]
            order_id, customer_id = o["order_id"], o["customer"]["id"]
            for item in o["items"]:
                rows[(order_id, item["line_no"])] = {
                    "order_id": order_id, "line_no": item["line_no"], "customer_id": customer_id,
                    "product_id": item["product_id"], "quantity": item["quantity"], "line_total": item["line_total"],
                    "position": ev.position}
    return list(rows.values())


def latest_orders(events: list[StoredEvent]) -> list[dict[str, Any]]:
    """The newest state of each order in the batch."""
    rows = {}
    for ev in events:
        if ev.type in e.ORDER_EVENTS:
            o = ev.payload["order"]
            rows[o["order_id"]] = {
                "order_id": o["order_id"], "tenant_id": ev.tenant_id, "customer_id": o["customer"]["id"],
                "status": o["status"], "total": o["total"], "placed_at": o["placed_at"], "position": ev.position}
    return list(rows.values())


def _array(column: str) -> str:
    kind = _COLUMN_TYPES[column]
    sent = kind if kind in _SENT_AS_IS else "text"
    return f"CAST(:{column} AS {sent}[])" + ("" if sent == kind else f"::{kind}[]")


#: Types whose Python values need no parsing (str and int), sent as they are.
_SENT_AS_IS = frozenset({"text", "smallint", "integer", "bigint"})


class CustomerDashboards:
    """Projection of customer and order events into per-customer dashboard rows."""

    name: ClassVar[str] = "customer_dashboards"
    store: ClassVar[str] = "dashboards"
    handles: ClassVar[frozenset[str]] = e.CUSTOMER_EVENTS | e.ORDER_EVENTS | e.PRODUCT_EVENTS

    def __init__(self, stores: Stores, version: int = 1) -> None:
        self.version, self.label = version, label(self.name, version)
        self.engine = stores.dashboards
        self.tables = Tables(stores.namespace, version)

    async def setup(self) -> None:
        try:
            await self._create()
        except DBAPIError:  # IF NOT EXISTS is not atomic: a process starting at the same time won; look again
            await self._create()

    async def _create(self) -> None:
        async with self.engine.begin() as conn:
            older = await self._made_by_an_older_release(conn)
            for statement in self.tables.ddl():
                await conn.execute(text(statement))
            if older:
                log.warning("%s was made by an older release without order lines: top products cover only orders "
                            "from now on until `prism rebuild %s`", self.tables.orders, self.name)
            for view, select in self.tables.views().items():  # served only if nothing is yet
                if (await conn.execute(text("SELECT to_regclass(:v)"), {"v": view})).scalar() is None:
                    await conn.execute(text(f"CREATE VIEW {view} AS {select}"))

    async def _made_by_an_older_release(self, conn: AsyncConnection) -> bool:
        """This version has orders but no order-lines table yet."""
        found = await conn.execute(text("SELECT to_regclass(:o) IS NOT NULL AND to_regclass(:l) IS NULL"),
                                   {"o": self.tables.orders, "l": self.tables.lines})
        if not found.scalar():
            return False
        return bool((await conn.execute(text(f"SELECT EXISTS (SELECT 1 FROM {self.tables.orders})"))).scalar())

    async def serve(self) -> None:
        """Staged views renamed into place in one transaction: readers see the old version or this one."""
        async with self.engine.begin() as conn:
            for view, select in self.tables.views().items():
                short = view.split(".", 1)[1]
                await conn.execute(text(f"DROP VIEW IF EXISTS {view}__staged"))
                await conn.execute(text(f"CREATE VIEW {view}__staged AS {select}"))
                await conn.execute(text(f"DROP VIEW IF EXISTS {view}"))
                await conn.execute(text(f"ALTER VIEW {view}__staged RENAME TO {short}"))

    async def checkpoint(self) -> int:
        return await read_checkpoint(self.engine, self.tables)

    async def apply(self, batch: Batch) -> None:
        customers, orders = latest_customers(batch.events), latest_orders(batch.events)
        touched = list({row["customer_id"] for row in customers + orders})
        async with self.engine.begin() as conn:
            await self._upsert(conn, self.tables.customers, "customer_id", customers)
            await self._upsert(conn, self.tables.orders, "order_id", orders)
            await self._upsert(conn, self.tables.lines, "order_id, line_no", latest_lines(batch.events))
            await self._upsert(conn, self.tables.products, "product_id", latest_products(batch.events))
            if touched:
                await conn.execute(text(self._recompute_sql()), {"ids": touched})
            await conn.execute(text(
                f"INSERT INTO {self.tables.checkpoints} AS c (projection, position) VALUES (:p, :upto) "
                "ON CONFLICT (projection) DO UPDATE SET position = GREATEST(c.position, excluded.position), "
                "updated_at = now()"), {"p": self.tables.checkpoint_key, "upto": batch.upto})

    async def drop(self) -> None:
        async with self.engine.begin() as conn:
            for statement in self.tables.ddl()[:2]:  # the schema and the checkpoints table may not exist yet
                await conn.execute(text(statement))
            for table in (self.tables.customers, self.tables.orders, self.tables.lines, self.tables.products,
                          self.tables.dashboards):
                await conn.execute(text(f"DROP TABLE IF EXISTS {table} CASCADE"))  # with the views, if served
            await conn.execute(text(f"DELETE FROM {self.tables.checkpoints} WHERE projection = :p"),
                               {"p": self.tables.checkpoint_key})

    async def repair(self, order_ids: list[str], customer_ids: list[str], events: list[StoredEvent]) -> None:
        await forget_and_apply(self, order_ids, customer_ids, events)

    async def forget(self, order_ids: list[str], customer_ids: list[str]) -> None:
        t = self.tables
        async with self.engine.begin() as conn:
            for table, key, ids in ((t.orders, "order_id", order_ids), (t.lines, "order_id", order_ids),
                                    (t.customers, "customer_id", customer_ids),
                                    (t.dashboards, "customer_id", customer_ids)):
                if ids:
                    await conn.execute(text(f"DELETE FROM {table} WHERE {key} = ANY(:ids)"),
                                       {"ids": [uuid.UUID(i) for i in ids]})

    @staticmethod
    async def _upsert(conn: AsyncConnection, table: str, key: str, rows: list[dict[str, Any]]) -> None:
        """One statement of column arrays, whatever the number of rows (so the driver prepares it once per table);
        a row replaces the stored one only when newer."""
        if not rows:
            return
        columns = list(rows[0])
        arrays = ", ".join(_array(col) for col in columns)
        updates = ", ".join(f"{col} = excluded.{col}" for col in columns if col not in key.split(", "))
        await conn.execute(text(
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) "
            f"ON CONFLICT ({key}) DO UPDATE SET {updates} WHERE {table}.position < excluded.position"),
            {col: [row[col] for row in rows] for col in columns})

    def _recompute_sql(self) -> str:
        t = self.tables
        counted = ", ".join(f"count(o.order_id) FILTER (WHERE o.status = '{s}')"
                            for s in ("pending", "confirmed", "shipped", "cancelled"))
        return f"""
            INSERT INTO {t.dashboards} (customer_id, tenant_id, name, email, order_count, pending_count,
                confirmed_count, shipped_count, cancelled_count, lifetime_value, average_order_value,
                last_order_at, position)
            SELECT c.customer_id, c.tenant_id, c.name, c.email, count(o.order_id), {counted},
                coalesce(sum(o.total) FILTER (WHERE o.status <> 'cancelled'), 0),
                coalesce(round(avg(o.total) FILTER (WHERE o.status <> 'cancelled'), 2), 0),
                max(o.placed_at), greatest(c.position, coalesce(max(o.position), 0))
            FROM {t.customers} c LEFT JOIN {t.orders} o ON o.customer_id = c.customer_id
            WHERE c.customer_id = ANY(CAST(:ids AS text[])::uuid[])
            GROUP BY c.customer_id
            ON CONFLICT (customer_id) DO UPDATE SET name = excluded.name, email = excluded.email,
                order_count = excluded.order_count, pending_count = excluded.pending_count,
                confirmed_count = excluded.confirmed_count, shipped_count = excluded.shipped_count,
                cancelled_count = excluded.cancelled_count, lifetime_value = excluded.lifetime_value,
                average_order_value = excluded.average_order_value, last_order_at = excluded.last_order_at,
                position = excluded.position"""



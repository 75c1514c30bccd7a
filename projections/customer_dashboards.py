"""Customer dashboards in Postgres (the dashboards database): one row per customer holding all its dashboard shows.

Source rows (customers, orders, order lines, products) are upserted only when newer
(``WHERE position < excluded.position``). Before that, in the same statement that
reads them, the orders a batch replaces are taken out of the customer's counts and
sums (per status, per month, per product) and the new states put in: the guard and
the checkpoint share the transaction, so a replayed or redelivered event replaces
nothing and changes no sum. The row's lists (spend by month, top 5 products with
today's names, last order) are then rebuilt from those small tables for the
customers the batch touched, and for the buyers of a product it renames; in a
catch-up, once every few seconds for all the batches since, the checkpoint
held back until then (see ``Batch.more``).

Each version has tables of its own; readers query the views ``customer_dashboards``
and ``customer_dashboards_checkpoint``, which ``serve`` renames into place in one
transaction.
"""

from __future__ import annotations

import logging
import time
import uuid
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.base import Batch, Deferred, Projection, forget_and_apply
from projections.dashboard_sql import (
    arrays,
    latest_customers,
    latest_lines,
    latest_orders,
    latest_products,
    moves_sql,
    show,
    upsert,
)
from projections.layouts import postgres_views
from projections.layouts.customer_dashboards import PROJECTION, Tables, read_checkpoint
from projections.stores.clients import Stores
from write import events as e
from write.events import StoredEvent
from write.facts import TenantFacts
from write.partitions import WHOLE, Partition

log = logging.getLogger("prism.customer_dashboards")


class CustomerDashboards(Projection):
    """Projection of customer and order events into per-customer dashboard rows."""

    name: ClassVar[str] = PROJECTION
    store: ClassVar[str] = "dashboards"
    handles: ClassVar[frozenset[str]] = e.CUSTOMER_EVENTS | e.ORDER_EVENTS | e.PRODUCT_EVENTS

    def __init__(self, stores: Stores, version: int = 1, partition: Partition = WHOLE) -> None:
        super().__init__(stores, version, partition)
        self.engine = stores.dashboards
        self.tables = Tables(stores.namespace, version, partition)
        self._unshown = Deferred()

    async def setup(self) -> None:
        await postgres_views.set_up(self.engine, self.tables.schema, self._create)

    async def _create(self, conn: AsyncConnection) -> None:
        older = await self._made_by_an_older_release(conn)
        unsummed = await self._has_orders_but_no(conn, self.tables.months)
        await postgres_views.apply_ddl(conn, self.tables.ddl())
        if older:
            log.warning(
                "%s was made by an older release without order lines: top products cover only orders "
                "from now on until `prism rebuild %s`",
                self.tables.orders,
                self.name,
            )
        if unsummed:
            await self._sum_stored_orders(conn)
        for view, select in self.tables.views().items():  # served only if nothing is yet
            if (await conn.execute(text("SELECT to_regclass(:v)"), {"v": view})).scalar() is None:
                await conn.execute(text(f"CREATE VIEW {view} AS {select}"))
            elif await self._served_without_new_columns(conn, view, select):
                await conn.execute(text(f"CREATE OR REPLACE VIEW {view} AS {select}"))
        await postgres_views.upgrade_checkpoint_view(conn, self.tables.served_checkpoint, self.tables.version_key)

    async def _has_orders_but_no(self, conn: AsyncConnection, table: str) -> bool:
        found = await conn.execute(
            text("SELECT to_regclass(:o) IS NOT NULL AND to_regclass(:t) IS NULL"),
            {"o": self.tables.orders, "t": table},
        )
        return bool(found.scalar()) and bool(
            (await conn.execute(text(f"SELECT EXISTS (SELECT 1 FROM {self.tables.orders})"))).scalar()
        )

    async def _sum_stored_orders(self, conn: AsyncConnection) -> None:
        """For a version made by a release that kept no sums per month and product: them, from its stored orders,
        and every row's shown parts."""
        t = self.tables
        await conn.execute(
            text(f"""
            INSERT INTO {t.months} (customer_id, month, orders, spend)
            SELECT customer_id, date_trunc('month', placed_at AT TIME ZONE 'UTC')::date, count(*), sum(total)
            FROM {t.orders} WHERE status <> 'cancelled' GROUP BY 1, 2""")
        )
        await conn.execute(
            text(f"""
            INSERT INTO {t.bought} (customer_id, product_id, quantity, revenue)
            SELECT l.customer_id, l.product_id, sum(l.quantity), sum(l.line_total)
            FROM {t.lines} l JOIN {t.orders} o ON o.order_id = l.order_id AND o.status <> 'cancelled'
            GROUP BY 1, 2""")
        )
        everyone = (await conn.execute(text(f"SELECT customer_id::text FROM {t.dashboards}"))).scalars().all()
        await show(conn, self.tables, list(everyone), [])

    async def _served_without_new_columns(self, conn: AsyncConnection, view: str, select: str) -> bool:
        """The view serves this version's table but lacks columns added to it since (a view's ``*`` is the table's
        columns when the view was made)."""
        table = select.rsplit(" FROM ", 1)[1]
        if not select.startswith("SELECT *"):
            return False
        found = await conn.execute(
            text(
                "SELECT (SELECT definition FROM pg_views WHERE schemaname = :s AND viewname = :v), "
                "(SELECT count(*) FROM information_schema.columns WHERE table_schema = :s AND table_name = :v), "
                "(SELECT count(*) FROM information_schema.columns WHERE table_schema = :s AND table_name = :t)"
            ),
            {"s": self.tables.schema, "v": view.split(".", 1)[1], "t": table.split(".", 1)[1]},
        )
        definition, in_view, in_table = found.one()
        return table.split(".", 1)[1] in (definition or "") and in_view < in_table

    async def _made_by_an_older_release(self, conn: AsyncConnection) -> bool:
        """This version has orders but no order-lines table yet."""
        return await self._has_orders_but_no(conn, self.tables.lines)

    async def serve(self) -> None:
        """Staged views renamed into place in one transaction: readers see the old version or this one."""
        await postgres_views.switch(self.engine, self.tables.views())

    async def is_served(self) -> bool:
        """The served checkpoint view selects this version's checkpoint (it is switched last)."""
        return await postgres_views.serves(self.engine, self.tables.served_checkpoint, self.tables.version_key)

    async def checkpoint(self) -> int:
        return await read_checkpoint(self.engine, self.tables)

    async def apply(self, batch: Batch) -> None:
        """The sums at once; the rows' shown parts, and the checkpoint, with them, or in a catch-up (``more``) once
        every few seconds (``Deferred``) for all the customers touched since (each batch touches most of a tenant's busy
        customers, and rebuilding their lists costs more than the batch's writes)."""
        customers, orders, lines = (
            latest_customers(batch.events),
            latest_orders(batch.events),
            latest_lines(batch.events),
        )
        products = latest_products(batch.events)
        touched = {row["customer_id"] for row in customers + orders}
        renamed = {row["product_id"] for row in products}
        show = not batch.more or self._unshown.due()
        started = time.monotonic()
        async with self.engine.begin() as conn:
            await upsert(conn, self.tables.customers, "customer_id", customers)
            if orders:
                await conn.execute(
                    postgres_views.statement(moves_sql(self.tables)),
                    {**arrays("o_", orders), **arrays("l_", lines), "forgotten": []},
                )
            await upsert(conn, self.tables.orders, "order_id", orders)
            await upsert(conn, self.tables.lines, "order_id, line_no", lines)
            await upsert(conn, self.tables.products, "product_id", products)
            if show:
                await self._show_unshown(conn, touched, renamed, batch.upto)
        if show:  # what is kept for later changes only once the transaction has committed
            self._unshown.done(time.monotonic() - started)
        else:
            self._unshown.add(batch.upto, customers=touched, products=renamed)

    async def settle(self) -> None:
        """The shown parts a catch-up left for later, and the checkpoint they held back."""
        if self._unshown.upto:
            started = time.monotonic()
            async with self.engine.begin() as conn:
                await self._show_unshown(conn, set(), set(), 0)
            self._unshown.done(time.monotonic() - started)

    async def _show_unshown(self, conn: AsyncConnection, touched: set[str], renamed: set[str], upto: int) -> None:
        unshown = self._unshown
        await show(conn, self.tables, list(touched | unshown.of("customers")), list(renamed | unshown.of("products")))
        await postgres_views.move_checkpoint(
            conn, self.tables.schema, self.tables.checkpoint_key, max(upto, unshown.upto)
        )

    async def drop(self) -> None:
        async with self.engine.begin() as conn:
            await postgres_views.lock_schema(conn, self.tables.schema)
            for statement in self.tables.ddl()[:2]:  # the schema and the checkpoints table may not exist yet
                await conn.execute(text(statement))
            for table in (
                self.tables.customers,
                self.tables.orders,
                self.tables.lines,
                self.tables.products,
                self.tables.dashboards,
                self.tables.months,
                self.tables.bought,
            ):
                await conn.execute(text(f"DROP TABLE IF EXISTS {table} CASCADE"))  # with the views, if served
            await postgres_views.forget_checkpoint(conn, self.tables.schema, self.tables.version_key)

    async def fingerprints(self, tenant: str) -> dict[str, tuple]:
        """The tenant's rows: name, email, order count and lifetime value, by customer."""
        sql = (
            f"SELECT customer_id::text, name, email, order_count, lifetime_value::text "
            f"FROM {self.tables.dashboards} WHERE tenant_id = :t"
        )
        async with self.engine.connect() as conn:
            return {row[0]: tuple(row[1:]) for row in await conn.execute(text(sql), {"t": tenant})}

    @staticmethod
    def expected(facts: TenantFacts) -> dict[str, tuple]:
        """Every customer with its orders counted and its orders not cancelled summed."""
        counts = dict.fromkeys(facts.customers, 0)
        spent = dict.fromkeys(facts.customers, Decimal(0))
        for order in facts.orders.values():
            counts[order.customer_id] += 1
            if order.status != "cancelled":
                spent[order.customer_id] += Decimal(order.total)
        return {
            c.id: (c.name, c.email, counts[c.id], str(spent[c.id].quantize(Decimal("0.01"))))
            for c in facts.customers.values()
        }

    @classmethod
    def aggregates(cls, keys: list[str], facts: TenantFacts) -> tuple[list[str], list[str]]:
        """A row is a customer's: its events and all its orders' rewrite it."""
        return facts.orders_of(set(keys)), list(keys)

    async def state(self) -> dict[str, Any]:
        """The source and dashboard tables' rows, by table name less the schema."""
        t = self.tables
        async with self.engine.connect() as conn:
            return {
                table.split(".")[1]: [tuple(r) for r in await conn.execute(text(f"SELECT * FROM {table} ORDER BY 1"))]
                for table in (t.customers, t.orders, t.dashboards)
            }

    async def repair(self, order_ids: list[str], customer_ids: list[str], events: list[StoredEvent]) -> None:
        await forget_and_apply(self, order_ids, customer_ids, events)

    async def forget(self, order_ids: list[str], customer_ids: list[str]) -> None:
        t = self.tables
        async with self.engine.begin() as conn:
            buyers = []
            if order_ids:  # their sums go before their rows
                buyers = [
                    str(c)
                    for c in (
                        await conn.execute(
                            text(
                                f"SELECT DISTINCT customer_id FROM {t.orders} "
                                "WHERE order_id = ANY(CAST(:ids AS text[])::uuid[])"
                            ),
                            {"ids": order_ids},
                        )
                    ).scalars()
                ]
                await conn.execute(
                    text(moves_sql(self.tables)), {**arrays("o_", []), **arrays("l_", []), "forgotten": order_ids}
                )
            for table, key, ids in (
                (t.orders, "order_id", order_ids),
                (t.lines, "order_id", order_ids),
                (t.customers, "customer_id", customer_ids),
                (t.dashboards, "customer_id", customer_ids),
                (t.months, "customer_id", customer_ids),
                (t.bought, "customer_id", customer_ids),
            ):
                if ids:
                    await conn.execute(
                        text(f"DELETE FROM {table} WHERE {key} = ANY(:ids)"), {"ids": [uuid.UUID(i) for i in ids]}
                    )
            await show(conn, self.tables, buyers, [])

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
from typing import Any, ClassVar

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.base import Batch, Deferred, forget_and_apply, label
from projections.layouts.customer_dashboards import Tables, read_checkpoint
from projections.stores.clients import Stores
from write import events as e
from write.events import StoredEvent

log = logging.getLogger("prism.customer_dashboards")
#: The Postgres type of each source column; an upsert sends ``text`` arrays of the others and casts them.
_COLUMN_TYPES = {
    "customer_id": "uuid",
    "order_id": "uuid",
    "product_id": "uuid",
    "tenant_id": "text",
    "name": "text",
    "email": "text",
    "status": "text",
    "total": "numeric",
    "line_total": "numeric",
    "placed_at": "timestamptz",
    "line_no": "smallint",
    "quantity": "integer",
    "position": "bigint",
}


# Rows keep the payload's text (ids, money, times): Postgres parses it in the upsert's casts, far
# cheaper than building UUID, Decimal and datetime objects in Python for every line of every order.


def latest_customers(events: list[StoredEvent]) -> list[dict[str, Any]]:
    """The newest state of each customer in the batch."""
    rows = {
        ev.payload["customer_id"]: {
            "customer_id": ev.payload["customer_id"],
            "tenant_id": ev.tenant_id,
            "name": ev.payload["name"],
            "email": ev.payload["email"],
            "position": ev.position,
        }
        for ev in events
        if ev.type in e.CUSTOMER_EVENTS
    }
    return list(rows.values())


def latest_products(events: list[StoredEvent]) -> list[dict[str, Any]]:
    """The newest name of each product in the batch (top products show today's names)."""
    rows = {
        ev.payload["product_id"]: {
            "product_id": ev.payload["product_id"],
            "tenant_id": ev.tenant_id,
            "name": ev.payload["name"],
            "position": ev.position,
        }
        for ev in events
        if ev.type in e.PRODUCT_EVENTS
    }
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
                    "order_id": order_id,
                    "line_no": item["line_no"],
                    "customer_id": customer_id,
                    "product_id": item["product_id"],
                    "quantity": item["quantity"],
                    "line_total": item["line_total"],
                    "position": ev.position,
                }
    return list(rows.values())


def latest_orders(events: list[StoredEvent]) -> list[dict[str, Any]]:
    """The newest state of each order in the batch."""
    rows = {}
    for ev in events:
        if ev.type in e.ORDER_EVENTS:
            o = ev.payload["order"]
            rows[o["order_id"]] = {
                "order_id": o["order_id"],
                "tenant_id": ev.tenant_id,
                "customer_id": o["customer"]["id"],
                "status": o["status"],
                "total": o["total"],
                "placed_at": o["placed_at"],
                "position": ev.position,
            }
    return list(rows.values())


def _array(column: str, prefix: str = "") -> str:
    kind = _COLUMN_TYPES[column]
    if kind in _JOINED:
        return f"string_to_array(CAST(:{prefix}{column} AS text), ',')::{kind}[]"
    return f"CAST(:{prefix}{column} AS text[])" + ("" if kind == "text" else f"::{kind}[]")


def _sent(column: str, values: list[Any]) -> Any:
    """A column's values as ``_array`` takes them: for types whose text holds no comma, one comma-joined text
    (asyncpg encodes a list element by element, checking each against the collection ABCs: 29% of the
    projection's CPU in a rebuild's profile), for the others the list."""
    if _COLUMN_TYPES[column] not in _JOINED:
        return values
    joined = ",".join(map(str, values))
    if joined.count(",") != max(len(values) - 1, 0):
        raise ValueError(f"a {column} value holds a comma: {values!r:.200}")
    return joined


#: Types whose text never holds a comma (ids, numbers, ISO times), sent comma-joined.
_JOINED = frozenset({"uuid", "numeric", "timestamptz", "smallint", "integer", "bigint"})


class CustomerDashboards:
    """Projection of customer and order events into per-customer dashboard rows."""

    name: ClassVar[str] = "customer_dashboards"
    store: ClassVar[str] = "dashboards"
    handles: ClassVar[frozenset[str]] = e.CUSTOMER_EVENTS | e.ORDER_EVENTS | e.PRODUCT_EVENTS

    def __init__(self, stores: Stores, version: int = 1) -> None:
        self.version, self.label = version, label(self.name, version)
        self.engine = stores.dashboards
        self.tables = Tables(stores.namespace, version)
        self._unshown = Deferred()

    async def setup(self) -> None:
        try:
            await self._create()
        except DBAPIError:  # IF NOT EXISTS is not atomic: a process starting at the same time won; look again
            await self._create()

    async def _create(self) -> None:
        async with self.engine.begin() as conn:
            older = await self._made_by_an_older_release(conn)
            unsummed = await self._has_orders_but_no(conn, self.tables.months)
            for statement in self.tables.ddl():
                await conn.execute(text(statement))
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
        await self._show(conn, list(everyone), [])

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
            await self._upsert(conn, self.tables.customers, "customer_id", customers)
            if orders:
                await conn.execute(
                    text(self._moves_sql()), {**_arrays("o_", orders), **_arrays("l_", lines), "forgotten": []}
                )
            await self._upsert(conn, self.tables.orders, "order_id", orders)
            await self._upsert(conn, self.tables.lines, "order_id, line_no", lines)
            await self._upsert(conn, self.tables.products, "product_id", products)
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
        await self._show(conn, list(touched | unshown.of("customers")), list(renamed | unshown.of("products")))
        await conn.execute(
            text(
                f"INSERT INTO {self.tables.checkpoints} AS c (projection, position) VALUES (:p, :upto) "
                "ON CONFLICT (projection) DO UPDATE SET position = GREATEST(c.position, excluded.position), "
                "updated_at = now()"
            ),
            {"p": self.tables.checkpoint_key, "upto": max(upto, unshown.upto)},
        )

    async def drop(self) -> None:
        async with self.engine.begin() as conn:
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
            await conn.execute(
                text(f"DELETE FROM {self.tables.checkpoints} WHERE projection = :p"), {"p": self.tables.checkpoint_key}
            )

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
                                f"SELECT DISTINCT customer_id FROM {t.orders} WHERE order_id = ANY(CAST(:ids AS text[])::uuid[])"
                            ),
                            {"ids": order_ids},
                        )
                    ).scalars()
                ]
                await conn.execute(
                    text(self._moves_sql()), {**_arrays("o_", []), **_arrays("l_", []), "forgotten": order_ids}
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
            await self._show(conn, buyers, [])

    @staticmethod
    async def _upsert(conn: AsyncConnection, table: str, key: str, rows: list[dict[str, Any]]) -> None:
        """One statement of column arrays, whatever the number of rows (so the driver prepares it once per table);
        a row replaces the stored one only when newer."""
        if not rows:
            return
        columns = list(rows[0])
        arrays = ", ".join(_array(col) for col in columns)
        updates = ", ".join(f"{col} = excluded.{col}" for col in columns if col not in key.split(", "))
        await conn.execute(
            text(
                f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) "
                f"ON CONFLICT ({key}) DO UPDATE SET {updates} WHERE {table}.position < excluded.position"
            ),
            {col: _sent(col, [row[col] for row in rows]) for col in columns},
        )

    def _moves_sql(self) -> str:
        """One statement: the orders that replace a stored state (or are new), and the ``forgotten`` ones, moved in
        the customers' counts and sums: the stored state out, the new one in.

        It must run before the orders and lines are upserted: it reads the stored states
        they replace. Orders and their lines share positions (every order event carries
        all of its lines), so a replaced order is replaced with all its lines.
        """
        t = self.tables
        live = "status <> 'cancelled'"
        counted = ", ".join(f"coalesce(sum(sign) FILTER (WHERE status = '{s}'), 0)" for s in _STATUSES)
        added = ", ".join(
            f"{c} = d.{c} + excluded.{c}" for c in ("order_count", *(f"{s}_count" for s in _STATUSES), "lifetime_value")
        )
        return f"""
            WITH incoming AS (SELECT * FROM unnest({_unnest("o_", _ORDER_COLUMNS)})
                                AS i({", ".join(_ORDER_COLUMNS)})),
            incoming_lines AS (SELECT * FROM unnest({_unnest("l_", _LINE_COLUMNS)})
                                AS l({", ".join(_LINE_COLUMNS)})),
            replaced AS (SELECT o.* FROM {t.orders} o JOIN incoming i ON i.order_id = o.order_id
                         WHERE o.position < i.position
                         UNION ALL
                         SELECT o.* FROM {t.orders} o WHERE o.order_id = ANY(CAST(:forgotten AS text[])::uuid[])),
            replacing AS (SELECT i.* FROM incoming i LEFT JOIN {t.orders} o ON o.order_id = i.order_id
                          WHERE o.order_id IS NULL OR o.position < i.position),
            moves AS (SELECT customer_id, tenant_id, status, total, placed_at, position, 1 AS sign FROM replacing
                      UNION ALL
                      SELECT customer_id, tenant_id, status, total, placed_at, 0, -1 FROM replaced),
            line_moves AS (SELECT l.customer_id, l.product_id, l.quantity, l.line_total, 1 AS sign
                           FROM incoming_lines l JOIN replacing o ON o.order_id = l.order_id AND o.{live}
                           UNION ALL
                           SELECT l.customer_id, l.product_id, l.quantity, l.line_total, -1
                           FROM {t.lines} l JOIN replaced o ON o.order_id = l.order_id AND o.{live}),
            months AS (INSERT INTO {t.months} AS m (customer_id, month, orders, spend)
                       SELECT customer_id, date_trunc('month', placed_at AT TIME ZONE 'UTC')::date, sum(sign),
                              sum(sign * total)
                       FROM moves WHERE {live} GROUP BY 1, 2
                       ON CONFLICT (customer_id, month) DO UPDATE SET orders = m.orders + excluded.orders,
                           spend = m.spend + excluded.spend),
            bought AS (INSERT INTO {t.bought} AS b (customer_id, product_id, quantity, revenue)
                       SELECT customer_id, product_id, sum(sign * quantity), sum(sign * line_total)
                       FROM line_moves GROUP BY 1, 2
                       ON CONFLICT (customer_id, product_id) DO UPDATE SET quantity = b.quantity + excluded.quantity,
                           revenue = b.revenue + excluded.revenue)
            INSERT INTO {t.dashboards} AS d (customer_id, tenant_id, name, email, order_count, {_COUNTS},
                lifetime_value, average_order_value, position)
            SELECT customer_id, min(tenant_id), '', '', sum(sign), {counted},
                   coalesce(sum(sign * total) FILTER (WHERE {live}), 0), 0, max(position)
            FROM moves GROUP BY customer_id
            ON CONFLICT (customer_id) DO UPDATE SET {added}, position = greatest(d.position, excluded.position)"""

    async def _show(self, conn: AsyncConnection, customer_ids: list[str], renamed: list[str]) -> None:
        """The shown parts of these customers' rows, and of the rows showing a renamed product, rebuilt from the
        small tables: names, average, spend by month, top products, last order."""
        if not customer_ids and not renamed:
            return
        t = self.tables
        chosen = (
            f"chosen AS (SELECT unnest(CAST(:ids AS text[])::uuid[]) AS customer_id UNION "
            f"SELECT customer_id FROM {t.dashboards} WHERE top_product_ids && CAST(:renamed AS text[])::uuid[])"
        )
        await conn.execute(
            text(f"""
            WITH {chosen}
            INSERT INTO {t.dashboards} AS d (customer_id, tenant_id, name, email, order_count, {_COUNTS},
                lifetime_value, average_order_value, position)
            SELECT c.customer_id, c.tenant_id, c.name, c.email, 0, {", ".join("0" for _ in _STATUSES)}, 0, 0,
                   c.position
            FROM {t.customers} c JOIN chosen USING (customer_id)
            ON CONFLICT (customer_id) DO UPDATE SET name = excluded.name, email = excluded.email,
                position = greatest(d.position, excluded.position)"""),
            {"ids": customer_ids, "renamed": renamed},
        )
        await conn.execute(
            text(f"""
            WITH {chosen},
            top AS (
                SELECT chosen.customer_id,
                       jsonb_agg(jsonb_build_object('product_id', b.product_id::text, 'name', coalesce(p.name, ''),
                                                    'quantity', b.quantity, 'revenue', b.revenue::text)
                                 ORDER BY b.rank) AS products,
                       array_agg(b.product_id ORDER BY b.rank) AS ids
                FROM chosen CROSS JOIN LATERAL (
                    SELECT product_id, quantity, revenue,
                           row_number() OVER (ORDER BY revenue DESC, product_id) AS rank
                    FROM {t.bought} WHERE customer_id = chosen.customer_id AND quantity > 0
                    ORDER BY revenue DESC, product_id LIMIT 5) b
                LEFT JOIN {t.products} p ON p.product_id = b.product_id
                GROUP BY chosen.customer_id)
            UPDATE {t.dashboards} d SET
                average_order_value = CASE WHEN d.order_count > d.cancelled_count
                    THEN round(d.lifetime_value / (d.order_count - d.cancelled_count), 2) ELSE 0 END,
                spend_by_month = (
                    SELECT coalesce(jsonb_object_agg(to_char(m.month, 'YYYY-MM'),
                                                     jsonb_build_object('orders', m.orders, 'spend', m.spend::text)),
                                    '{{}}')
                    FROM (SELECT month, orders, spend FROM {t.months} WHERE customer_id = d.customer_id
                          AND orders > 0 ORDER BY month DESC LIMIT {SHOWN_MONTHS}) m),
                top_products = coalesce(top.products, '[]'), top_product_ids = coalesce(top.ids, '{{}}'),
                (last_order, last_order_at) = (
                    SELECT jsonb_build_object('order_id', o.order_id::text, 'status', o.status,
                                              'total', o.total::text, 'placed_at', o.placed_at), o.placed_at
                    FROM {t.orders} o WHERE o.customer_id = d.customer_id
                    ORDER BY o.placed_at DESC, o.order_id DESC LIMIT 1)
            FROM chosen LEFT JOIN top ON top.customer_id = chosen.customer_id
            WHERE d.customer_id = chosen.customer_id"""),
            {"ids": customer_ids, "renamed": renamed},
        )


_STATUSES = ("pending", "confirmed", "shipped", "cancelled")
_COUNTS = ", ".join(f"{s}_count" for s in _STATUSES)
_ORDER_COLUMNS = ("order_id", "tenant_id", "customer_id", "status", "total", "placed_at", "position")
_LINE_COLUMNS = ("order_id", "line_no", "customer_id", "product_id", "quantity", "line_total", "position")
#: The months with orders a row keeps: the reader shows the last 12 calendar months.
SHOWN_MONTHS = 24


def _arrays(prefix: str, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    columns = _ORDER_COLUMNS if prefix == "o_" else _LINE_COLUMNS
    return {f"{prefix}{col}": _sent(col, [row[col] for row in rows]) for col in columns}


def _unnest(prefix: str, columns: tuple[str, ...]) -> str:
    return ", ".join(_array(col, prefix) for col in columns)

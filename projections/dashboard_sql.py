"""The customer dashboards' rows and statements: what a batch upserts, and the SQL that moves a customer's sums
and rebuilds the shown parts of its row (see ``projections.customer_dashboards``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from projections.layouts.customer_dashboards import Tables
from projections.layouts.postgres_views import statement
from write import events as e
from write.events import StoredEvent

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


def array_sql(column: str, prefix: str = "") -> str:
    kind = _COLUMN_TYPES[column]
    if kind in _JOINED:
        return f"string_to_array(CAST(:{prefix}{column} AS text), ',')::{kind}[]"
    return f"CAST(:{prefix}{column} AS text[])" + ("" if kind == "text" else f"::{kind}[]")


def sent(column: str, values: list[Any]) -> Any:
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


async def upsert(conn: AsyncConnection, table: str, key: str, rows: list[dict[str, Any]]) -> None:
    """One statement of column arrays, whatever the number of rows (so the driver prepares it once per table);
    a row replaces the stored one only when newer."""
    if not rows:
        return
    columns = list(rows[0])
    arrays = ", ".join(array_sql(col) for col in columns)
    updates = ", ".join(f"{col} = excluded.{col}" for col in columns if col not in key.split(", "))
    await conn.execute(
        statement(
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) "
            f"ON CONFLICT ({key}) DO UPDATE SET {updates} WHERE {table}.position < excluded.position"
        ),
        {col: sent(col, [row[col] for row in rows]) for col in columns},
    )


def moves_sql(t: Tables) -> str:
    """One statement: the orders that replace a stored state (or are new), and the ``forgotten`` ones, moved in
    the customers' counts and sums: the stored state out, the new one in.

    It must run before the orders and lines are upserted: it reads the stored states
    they replace. Orders and their lines share positions (every order event carries
    all of its lines), so a replaced order is replaced with all its lines.
    """
    live = "status <> 'cancelled'"
    counted = ", ".join(f"coalesce(sum(sign) FILTER (WHERE status = '{s}'), 0)" for s in _STATUSES)
    added = ", ".join(
        f"{c} = d.{c} + excluded.{c}" for c in ("order_count", *(f"{s}_count" for s in _STATUSES), "lifetime_value")
    )
    return f"""
        WITH incoming AS (SELECT * FROM unnest({unnest_sql("o_", _ORDER_COLUMNS)})
                            AS i({", ".join(_ORDER_COLUMNS)})),
        incoming_lines AS (SELECT * FROM unnest({unnest_sql("l_", _LINE_COLUMNS)})
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


async def show(conn: AsyncConnection, t: Tables, customer_ids: list[str], renamed: list[str]) -> None:
    """The shown parts of these customers' rows, and of the rows showing a renamed product, rebuilt from the
    small tables: names, average, spend by month, top products, last order."""
    if not customer_ids and not renamed:
        return
    chosen = (
        f"chosen AS (SELECT unnest(CAST(:ids AS text[])::uuid[]) AS customer_id UNION "
        f"SELECT customer_id FROM {t.dashboards} WHERE top_product_ids && CAST(:renamed AS text[])::uuid[])"
    )
    await conn.execute(
        statement(f"""
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
        statement(f"""
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


def arrays(prefix: str, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    columns = _ORDER_COLUMNS if prefix == "o_" else _LINE_COLUMNS
    return {f"{prefix}{col}": sent(col, [row[col] for row in rows]) for col in columns}


def unnest_sql(prefix: str, columns: tuple[str, ...]) -> str:
    return ", ".join(array_sql(col, prefix) for col in columns)

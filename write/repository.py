"""Loading and saving aggregates inside one transaction.

Reads that feed an event's snapshot (customer name, product names) lock those
rows ``FOR SHARE`` until commit: a concurrent rename then commits either before
(and is read) or after (and gets a later position), so a snapshot never carries
a name older than an earlier event in the log.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import any_, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncConnection

from write.addresses import ShippingAddress
from write.domain import Line, Order
from write.errors import NotFound
from write.schema import customers, order_items, orders, products, tenants


async def require_tenant(conn: AsyncConnection, tenant_id: str) -> None:
    found = (await conn.execute(select(tenants.c.id).where(tenants.c.id == tenant_id))).first()
    if found is None:
        raise NotFound(f"tenant {tenant_id!r} is not registered", "tenant")


async def customer(conn: AsyncConnection, tenant_id: str, customer_id: uuid.UUID, lock: str = "share") -> Any:
    """The tenant's customer, locked; a customer proves its tenant, so the tenant is looked up only on a miss."""
    row = (await conn.execute(_CUSTOMER[lock], {"id": customer_id, "tenant_id": tenant_id})).first()
    if row is None:
        await require_tenant(conn, tenant_id)
        raise NotFound(f"customer {customer_id} does not exist in tenant {tenant_id!r}", "customer_id")
    return row


_CUSTOMER = {
    lock: select(customers)
    .where(customers.c.id == bindparam("id"), customers.c.tenant_id == bindparam("tenant_id"))
    .with_for_update(read=lock == "share")
    for lock in ("share", "update")
}


async def product(conn: AsyncConnection, tenant_id: str, product_id: uuid.UUID) -> Any:
    query = select(products).where(products.c.id == product_id, products.c.tenant_id == tenant_id).with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(f"product {product_id} does not exist in tenant {tenant_id!r}", "product_id")
    return row


async def products_for_share(conn: AsyncConnection, tenant_id: str, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Any]:
    """The named products of the tenant, locked in id order so lockers never deadlock."""
    wanted = sorted(set(ids))
    found = {row.id: row for row in await conn.execute(_PRODUCTS_FOR_SHARE, {"ids": wanted, "tenant_id": tenant_id})}
    missing = [str(pid) for pid in wanted if pid not in found]
    if missing:
        raise NotFound(f"products {', '.join(missing)} do not exist in tenant {tenant_id!r}", "items")
    return found


#: One statement whatever the number of products, so the driver prepares it once.
_PRODUCTS_FOR_SHARE = (
    select(products)
    .where(
        products.c.id == any_(bindparam("ids", type_=ARRAY(UUID(as_uuid=True)))),
        products.c.tenant_id == bindparam("tenant_id"),
    )
    .order_by(products.c.id)
    .with_for_update(read=True)
)


async def order(conn: AsyncConnection, tenant_id: str, order_id: uuid.UUID) -> tuple[Order, dict[uuid.UUID, Any]]:
    """The order locked for update, with its lines and their products locked for share."""
    query = select(orders).where(orders.c.id == order_id, orders.c.tenant_id == tenant_id).with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(f"order {order_id} does not exist in tenant {tenant_id!r}", "order_id")
    items = (
        await conn.execute(
            select(order_items).where(order_items.c.order_id == order_id).order_by(order_items.c.line_no)
        )
    ).all()
    names = await products_for_share(conn, tenant_id, [item.product_id for item in items])
    lines = tuple(Line(i.line_no, i.product_id, names[i.product_id].name, i.quantity, i.unit_price) for i in items)
    return _order(row, lines), names


def _order(row: Any, lines: tuple[Line, ...]) -> Order:
    return Order(
        id=row.id,
        tenant_id=row.tenant_id,
        customer_id=row.customer_id,
        status=row.status,
        lines=lines,
        placed_at=row.placed_at,
        version=row.version,
        discount_percent=row.discount_percent,
        discount_authorised_by=row.discount_authorised_by,
        note=row.note,
        cancel_reason=row.cancel_reason,
        confirmed_at=row.confirmed_at,
        shipped_at=row.shipped_at,
        cancelled_at=row.cancelled_at,
        shipping_address=_address(row),
    )


def _address(row: Any) -> ShippingAddress | None:
    if row.shipping_country is None:
        return None
    return ShippingAddress(
        recipient=row.shipping_recipient,
        street_lines=tuple(row.shipping_street_lines),
        city=row.shipping_city,
        country=row.shipping_country,
        postal_code=row.shipping_postal_code,
    )


#: The columns an order's decisions change, each named as the ``Order`` attribute that holds it.
_ORDER_STATE = (
    "status",
    "subtotal",
    "discount_percent",
    "discount",
    "total",
    "discount_authorised_by",
    "note",
    "cancel_reason",
    "confirmed_at",
    "shipped_at",
    "cancelled_at",
    "version",
)
#: The address's columns, set when the order is placed and never after.
_ADDRESS_COLUMNS = (
    "shipping_recipient",
    "shipping_street_lines",
    "shipping_city",
    "shipping_postal_code",
    "shipping_country",
)
#: The columns an order is placed with, its address's aside.
_PLACED_COLUMNS = ("id", "tenant_id", "customer_id", "placed_at", *_ORDER_STATE)
_ORDER_COLUMNS = (*_PLACED_COLUMNS, *_ADDRESS_COLUMNS)


def _order_values(o: Order, columns: tuple[str, ...] = _ORDER_STATE) -> dict[str, Any]:
    return {name: getattr(o, name) for name in columns}


def _address_values(address: ShippingAddress | None) -> dict[str, Any]:
    if address is None:
        return dict.fromkeys(_ADDRESS_COLUMNS)
    return {
        "shipping_recipient": address.recipient,
        "shipping_street_lines": list(address.street_lines),
        "shipping_city": address.city,
        "shipping_postal_code": address.postal_code,
        "shipping_country": address.country,
    }


async def add_order(conn: AsyncConnection, o: Order) -> None:
    """The order and its lines in one statement (one round trip)."""
    values = _order_values(o, _PLACED_COLUMNS) | _address_values(o.shipping_address)
    lines = {
        "line_no": [ln.line_no for ln in o.lines],
        "product_id": [ln.product_id for ln in o.lines],
        "quantity": [ln.quantity for ln in o.lines],
        "unit_price": [ln.unit_price for ln in o.lines],
    }
    await conn.execute(ADD_ORDER, values | lines)


_LINE_ARRAYS = {"line_no": "smallint", "product_id": "uuid", "quantity": "int", "unit_price": "numeric"}
#: The order row and its lines in one statement, lines as arrays (the bench's floor sends it too).
ADD_ORDER = text(
    f"WITH placed AS (INSERT INTO orders ({', '.join(_ORDER_COLUMNS)}) "
    f"VALUES ({', '.join(':' + name for name in _ORDER_COLUMNS)})) "
    f"INSERT INTO order_items (order_id, {', '.join(_LINE_ARRAYS)}) "
    f"SELECT CAST(:id AS uuid), * FROM unnest({', '.join(f'CAST(:{n} AS {t}[])' for n, t in _LINE_ARRAYS.items())})"
)


async def save_order(conn: AsyncConnection, o: Order) -> None:
    await conn.execute(update(orders).where(orders.c.id == o.id).values(**_order_values(o), updated_at=func.now()))

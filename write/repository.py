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

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from write.domain import Line, Order
from write.errors import NotFound
from write.schema import customers, order_items, orders, products, tenants


async def require_tenant(conn: AsyncConnection, tenant_id: str) -> None:
    found = (await conn.execute(select(tenants.c.id).where(tenants.c.id == tenant_id))).first()
    if found is None:
        raise NotFound(f"tenant {tenant_id!r} is not registered", "tenant")


async def customer(conn: AsyncConnection, tenant_id: str, customer_id: uuid.UUID, lock: str = "share") -> Any:
    query = select(customers).where(customers.c.id == customer_id, customers.c.tenant_id == tenant_id)
    query = query.with_for_update(read=lock == "share")
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(f"customer {customer_id} does not exist in tenant {tenant_id!r}", "customer_id")
    return row


async def product(conn: AsyncConnection, tenant_id: str, product_id: uuid.UUID) -> Any:
    query = select(products).where(products.c.id == product_id, products.c.tenant_id == tenant_id).with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(f"product {product_id} does not exist in tenant {tenant_id!r}", "product_id")
    return row


async def products_for_share(conn: AsyncConnection, tenant_id: str, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Any]:
    """The named products of the tenant, locked in id order so lockers never deadlock."""
    wanted = sorted(set(ids))
    query = (
        select(products).where(products.c.id.in_(wanted), products.c.tenant_id == tenant_id)
        .order_by(products.c.id).with_for_update(read=True)
    )
    found = {row.id: row for row in await conn.execute(query)}
    missing = [str(pid) for pid in wanted if pid not in found]
    if missing:
        raise NotFound(f"products {', '.join(missing)} do not exist in tenant {tenant_id!r}", "items")
    return found


async def order(conn: AsyncConnection, tenant_id: str, order_id: uuid.UUID) -> tuple[Order, dict[uuid.UUID, Any]]:
    """The order locked for update, with its lines and their products locked for share."""
    query = select(orders).where(orders.c.id == order_id, orders.c.tenant_id == tenant_id).with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(f"order {order_id} does not exist in tenant {tenant_id!r}", "order_id")
    items = (await conn.execute(select(order_items).where(order_items.c.order_id == order_id)
                                .order_by(order_items.c.line_no))).all()
    names = await products_for_share(conn, tenant_id, [item.product_id for item in items])
    lines = tuple(Line(i.line_no, i.product_id, names[i.product_id].name, i.quantity, i.unit_price) for i in items)
    return _order(row, lines), names


def _order(row: Any, lines: tuple[Line, ...]) -> Order:
    return Order(
        id=row.id, tenant_id=row.tenant_id, customer_id=row.customer_id, status=row.status, lines=lines,
        placed_at=row.placed_at, version=row.version, discount_percent=row.discount_percent,
        discount_authorised_by=row.discount_authorised_by, note=row.note, cancel_reason=row.cancel_reason,
        confirmed_at=row.confirmed_at, shipped_at=row.shipped_at, cancelled_at=row.cancelled_at,
    )


def _order_values(o: Order) -> dict[str, Any]:
    return {
        "status": o.status, "subtotal": o.subtotal, "discount_percent": o.discount_percent, "discount": o.discount,
        "total": o.total, "discount_authorised_by": o.discount_authorised_by, "note": o.note,
        "cancel_reason": o.cancel_reason, "confirmed_at": o.confirmed_at, "shipped_at": o.shipped_at,
        "cancelled_at": o.cancelled_at, "version": o.version,
    }


async def add_order(conn: AsyncConnection, o: Order) -> None:
    values = _order_values(o) | {"id": o.id, "tenant_id": o.tenant_id, "customer_id": o.customer_id,
                                 "placed_at": o.placed_at}
    await conn.execute(insert(orders), values)
    lines = [{"order_id": o.id, "line_no": ln.line_no, "product_id": ln.product_id, "quantity": ln.quantity,
              "unit_price": ln.unit_price} for ln in o.lines]
    await conn.execute(insert(order_items), lines)


async def save_order(conn: AsyncConnection, o: Order) -> None:
    await conn.execute(update(orders).where(orders.c.id == o.id).values(**_order_values(o), updated_at=func.now()))


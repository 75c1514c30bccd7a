"""The write model's state of one tenant as plain values: what the audit checks every projection against.

A contract like ``write.events``: projections map these facts to the fingerprints
they should hold (``Projection.expected``) without reading the write tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_ORDERS = text("""
    SELECT o.id::text AS id, o.customer_id::text AS customer_id, o.status, o.total::text AS total, o.version,
           array_agg(p.name ORDER BY i.line_no) AS products, sum(i.quantity)::int AS item_count,
           o.placed_at, o.confirmed_at, o.shipped_at, o.cancelled_at, o.shipping_country, o.shipping_city
    FROM orders o JOIN order_items i ON i.order_id = o.id JOIN products p ON p.id = i.product_id
    WHERE o.tenant_id = :t GROUP BY o.id ORDER BY o.id""")
_CUSTOMERS = text("SELECT id::text, name, email FROM customers WHERE tenant_id = :t ORDER BY id")


@dataclass(frozen=True)
class CustomerFacts:
    id: str
    name: str
    email: str


@dataclass(frozen=True)
class OrderFacts:
    id: str
    customer_id: str
    status: str
    #: As the write model keeps it: two decimals, as text.
    total: str
    version: int
    #: Today's names of its products, in line order.
    product_names: tuple[str, ...]
    #: The sum of its lines' quantities.
    item_count: int
    #: When it was placed, confirmed, shipped, cancelled: ISO 8601 in UTC (``utc_iso``), None if it was not.
    placed_at: str
    confirmed_at: str | None
    shipped_at: str | None
    cancelled_at: str | None
    #: Where it ships (ISO 3166-1 alpha-2 and the city as given), None when it has no shipping address.
    shipping_country: str | None
    shipping_city: str | None


def utc_iso(moment: datetime | str | None) -> str | None:
    """A time in the one form facts and fingerprints share: ISO 8601 in UTC (``+00:00``), to the microsecond
    Postgres keeps; an ISO string (an event's payload) is read first."""
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(UTC).isoformat()


@dataclass(frozen=True)
class TenantFacts:
    """Every order and customer of one tenant, by id."""

    tenant: str
    orders: dict[str, OrderFacts]
    customers: dict[str, CustomerFacts]

    def customer_of(self, order: OrderFacts) -> CustomerFacts:
        return self.customers[order.customer_id]

    def orders_of(self, customer_ids: set[str]) -> list[str]:
        """The ids of these customers' orders."""
        return sorted(o.id for o in self.orders.values() if o.customer_id in customer_ids)


async def tenant_facts(conn: AsyncConnection, tenant: str) -> TenantFacts:
    """One tenant's orders and customers as they are now (two queries in one snapshot if ``conn`` is in a
    repeatable-read transaction; the audit runs at lag 0, so read-committed is enough)."""
    orders = (await conn.execute(_ORDERS, {"t": tenant})).all()
    customers = (await conn.execute(_CUSTOMERS, {"t": tenant})).all()
    return TenantFacts(
        tenant,
        {o[0]: _order(o) for o in orders},
        {c[0]: CustomerFacts(*c) for c in customers},
    )


def _order(row: Any) -> OrderFacts:
    placed_at = utc_iso(row.placed_at)
    assert placed_at is not None  # NOT NULL in the write model
    return OrderFacts(
        row.id,
        row.customer_id,
        row.status,
        row.total,
        row.version,
        tuple(row.products),
        row.item_count,
        placed_at,
        utc_iso(row.confirmed_at),
        utc_iso(row.shipped_at),
        utc_iso(row.cancelled_at),
        row.shipping_country,
        row.shipping_city,
    )

"""The write model's state of one tenant as plain values: what the audit checks every projection against.

A contract like ``write.events``: projections map these facts to the fingerprints
they should hold (``Projection.expected``) without reading the write tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_ORDERS = text("""
    SELECT o.id::text, o.customer_id::text, o.status, o.total::text, o.version,
           array_agg(p.name ORDER BY i.line_no) AS products
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
        {o[0]: OrderFacts(o[0], o[1], o[2], o[3], o[4], tuple(o[5])) for o in orders},
        {c[0]: CustomerFacts(*c) for c in customers},
    )

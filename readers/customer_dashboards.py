"""Customer dashboards, read from the Postgres dashboards database."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel

from projections.customer_dashboards import Tables, query_served, read_checkpoint
from readers.consistency import Consistency, wait_for
from readers.deps import MinPosition, StoresDep, Tenant, WaitSeconds
from readers.errors import NotFound

router = APIRouter(tags=["dashboards (Postgres)"])


class OrderCounts(BaseModel):
    total: int
    pending: int
    confirmed: int
    shipped: int
    cancelled: int


class Dashboard(BaseModel):
    customer_id: str
    name: str
    email: str
    orders: OrderCounts
    lifetime_value: str
    average_order_value: str
    last_order_at: str | None
    consistency: Consistency


@router.get("/customers/{customer_id}/dashboard", response_model=Dashboard)
async def customer_dashboard(customer_id: uuid.UUID, tenant: Tenant, stores: StoresDep, wait: WaitSeconds,
                             response: Response, min_position: MinPosition = None) -> Any:
    tables = Tables(stores.namespace)
    served = await wait_for(lambda: read_checkpoint(stores.dashboards, tables, served=True), min_position, wait)
    rows = await query_served(stores.dashboards, f"SELECT * FROM {tables.served} WHERE customer_id = :c "
                              "AND tenant_id = :t", {"c": customer_id, "t": tenant})
    row = rows[0] if rows else None
    if row is None:
        raise NotFound(f"customer {customer_id} has no dashboard in this tenant (position {served.position})"
                       + ("; the projection has not reached min_position yet" if served.stale else ""))
    served.stamp(response)
    return {
        "customer_id": str(row.customer_id), "name": row.name, "email": row.email,
        "orders": {"total": row.order_count, "pending": row.pending_count, "confirmed": row.confirmed_count,
                   "shipped": row.shipped_count, "cancelled": row.cancelled_count},
        "lifetime_value": str(row.lifetime_value), "average_order_value": str(row.average_order_value),
        "last_order_at": row.last_order_at.isoformat() if row.last_order_at else None,
        "consistency": served.model(),
    }

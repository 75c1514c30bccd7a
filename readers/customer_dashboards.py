"""Customer dashboards, read from the Postgres dashboards database (its served views), one statement each."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from projections.layouts.customer_dashboards import PROJECTION, Tables, read_checkpoint
from projections.stores.clients import Stores
from readers import examples, postgres_reads
from readers.consistency import Consistency, ReadWait, Served, wait_for
from readers.deps import MinPosition, StoresDep, Tenant, Wait
from readers.errors import NotFound

router = APIRouter(tags=["dashboards (Postgres)"])


class OrderCounts(BaseModel):
    total: int
    pending: int
    confirmed: int
    shipped: int
    cancelled: int


class MonthSpend(BaseModel):
    month: str = Field(examples=["2026-11"])
    orders: int
    spend: str


class ProductSpend(BaseModel):
    product_id: str
    name: str
    quantity: int
    revenue: str


class LastOrder(BaseModel):
    order_id: str
    status: str
    total: str
    placed_at: str


class Dashboard(BaseModel):
    """Money as decimal strings; spend and top products leave cancelled orders out."""

    model_config = examples.example(examples.DASHBOARD)

    customer_id: str
    name: str
    email: str
    orders: OrderCounts
    lifetime_value: str = Field(examples=["1204.50"])
    average_order_value: str
    last_order_at: str | None
    spend_by_month: list[MonthSpend] = Field(description="The last 12 months (UTC), oldest first, empty ones too")
    top_products: list[ProductSpend] = Field(description="Up to 5, by revenue")
    last_order: LastOrder | None
    consistency: Consistency


class TopCustomer(BaseModel):
    customer_id: str
    name: str
    email: str
    orders: int
    lifetime_value: str


class TopCustomers(BaseModel):
    model_config = examples.example(examples.TOP_CUSTOMERS)

    by: str
    customers: list[TopCustomer]
    consistency: Consistency


def dashboard_sql(t: Tables) -> str:
    """The customer's one row: everything the dashboard shows was computed when its events were projected."""
    return f"""
        SELECT customer_id, name, email, order_count, pending_count, confirmed_count, shipped_count, cancelled_count,
               lifetime_value::text, average_order_value::text, last_order_at, spend_by_month, top_products,
               last_order
        FROM {t.served} WHERE customer_id = :c AND tenant_id = :t"""


def served_dashboard_sql(t: Tables) -> str:
    """The served checkpoint (of the partition ``:part`` names) and the customer's row, if any, in one statement: one
    round trip, one snapshot."""
    return f"""
        SELECT (SELECT position FROM {t.served_checkpoint} WHERE part = :part) AS served_position, d.*
        FROM (SELECT 1) AS one LEFT JOIN ({dashboard_sql(t)}) AS d ON true"""


def last_months(spend: dict[str, dict], now: datetime, months: int = 12) -> list[dict[str, Any]]:
    """The last ``months`` calendar months (UTC) up to ``now``'s, oldest first, the empty ones too."""
    shown, year, month = [], now.year, now.month
    for _ in range(months):
        key = f"{year:04d}-{month:02d}"
        found = spend.get(key)
        shown.append(
            {"month": key, "orders": found["orders"], "spend": found["spend"]}
            if found
            else {"month": key, "orders": 0, "spend": "0"}
        )
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return shown[::-1]


@router.get("/customers/{customer_id}/dashboard", response_model=Dashboard)
async def customer_dashboard(
    customer_id: uuid.UUID, tenant: Tenant, stores: StoresDep, wait: Wait, min_position: MinPosition = None
) -> Any:
    """The row goes out through orjson, unvalidated: it was shaped when projected (the response model documents
    it; validating it again on every read would cost more than the read)."""
    tables = Tables(stores.namespace)
    part = (await wait.partition_of(PROJECTION, tenant)).suffix
    sql, params = served_dashboard_sql(tables), {"c": customer_id, "t": tenant, "part": part}
    [row] = await postgres_reads.rows(stores, sql, params, behind=None if min_position is None else [None])
    if min_position is not None and (row is None or (row.served_position or 0) < min_position):
        await _served(stores, min_position, wait, tenant)  # the bounded wait; then the row as it is at its end
        [row] = await postgres_reads.rows(stores, sql, params)
    position = int(row.served_position or 0)
    served = Served(position, min_position is not None and position < min_position, min_position)
    if row.customer_id is None:
        raise NotFound(
            f"customer {customer_id} has no dashboard in this tenant (position {served.position})"
            + ("; the projection has not reached min_position yet" if served.stale else "")
        )
    return served.answer(
        orjson.dumps(
            {
                "customer_id": str(row.customer_id),
                "name": row.name,
                "email": row.email,
                "orders": {
                    "total": row.order_count,
                    "pending": row.pending_count,
                    "confirmed": row.confirmed_count,
                    "shipped": row.shipped_count,
                    "cancelled": row.cancelled_count,
                },
                "lifetime_value": row.lifetime_value,
                "average_order_value": row.average_order_value,
                "last_order_at": row.last_order_at.isoformat() if row.last_order_at else None,
                "spend_by_month": last_months(_json(row.spend_by_month), datetime.now(UTC)),
                "top_products": _json(row.top_products),
                "last_order": _json(row.last_order),
                "consistency": orjson.Fragment(served.json()),
            }
        )
    )


@router.get("/dashboards/top-customers", response_model=TopCustomers)
async def top_customers(
    tenant: Tenant,
    stores: StoresDep,
    wait: Wait,
    response: Response,
    by: Literal["lifetime_value", "orders"] = "lifetime_value",
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    min_position: MinPosition = None,
) -> Any:
    """The tenant's best customers by lifetime value or by number of orders (indexed for both)."""
    tables, served = await _served(stores, min_position, wait, tenant)
    column = "lifetime_value" if by == "lifetime_value" else "order_count"
    # the money goes out as text under another name: ORDER BY a name of the output would sort the text
    rows = await postgres_reads.rows(
        stores,
        f"""
        SELECT customer_id::text, name, email, order_count, lifetime_value::text AS ltv FROM {tables.served}
        WHERE tenant_id = :t ORDER BY {column} DESC, customer_id LIMIT :n""",
        {"t": tenant, "n": limit},
    )
    served.stamp(response)
    return {
        "by": by,
        "consistency": served.model(),
        "customers": [
            {"customer_id": r[0], "name": r[1], "email": r[2], "orders": r[3], "lifetime_value": r[4]} for r in rows
        ],
    }


def _json(value: Any) -> Any:
    """asyncpg hands json columns over as text."""
    return orjson.loads(value) if isinstance(value, str) else value


async def _served(stores: Stores, min_position: int | None, wait: ReadWait, tenant: str) -> tuple[Tables, Served]:
    """The served version's names, and its checkpoint (of the tenant's partition) once it has reached
    ``min_position`` (or the wait is over)."""
    tables = Tables(stores.namespace)

    async def read(part: str) -> int:
        return await postgres_reads.served_checkpoint(
            stores, read_checkpoint(stores.dashboards_for_reads, tables, served=True, part=part)
        )

    return tables, await wait_for(read, min_position, wait, PROJECTION, tenant)

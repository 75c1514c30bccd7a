"""Analysts' questions, answered from the ClickHouse order facts."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from projections.base import Stores
from projections.order_analytics import Tables, read_checkpoint
from readers.consistency import Consistency, wait_for
from readers.deps import MinPosition, StoresDep, Tenant, WaitSeconds
from readers.errors import InvalidQuery

router = APIRouter(tags=["analytics (ClickHouse)"])
PERIODS = {"day": "toDate", "week": "toMonday", "month": "toStartOfMonth"}
#: The range of ClickHouse's DateTime64.
EARLIEST, LATEST = date(1900, 4, 1), date(2299, 12, 31)


class RevenueRow(BaseModel):
    period: date
    orders: int
    revenue: str


class Revenue(BaseModel):
    granularity: str
    rows: list[RevenueRow]
    consistency: Consistency


class ProductRow(BaseModel):
    product_id: str
    name: str
    quantity: int
    revenue: str


class TopProducts(BaseModel):
    rows: list[ProductRow]
    consistency: Consistency


def revenue_sql(t: Tables, granularity: str) -> str:
    return f"""
        SELECT {PERIODS[granularity]}(placed_at) AS period, count() AS orders, sum(total) AS revenue
        FROM {t.view('orders')}
        WHERE tenant_id = %(tenant)s AND status != 'cancelled'
          AND placed_at >= %(start)s AND placed_at < %(end)s
        GROUP BY period ORDER BY period"""


def top_products_sql(t: Tables, by: str) -> str:
    return f"""
        SELECT l.product_id AS product_id, any(p.name) AS name, sum(l.quantity) AS quantity,
               sum(l.line_total) AS revenue
        FROM {t.view('order_lines')} AS l
        LEFT JOIN (SELECT product_id, name FROM {t.view('products')} WHERE tenant_id = %(tenant)s) AS p
          ON p.product_id = l.product_id
        WHERE l.tenant_id = %(tenant)s AND l.status != 'cancelled'
        GROUP BY l.product_id ORDER BY {by} DESC, product_id LIMIT %(limit)s"""


async def _query(stores: Stores, sql: str, parameters: dict[str, Any]) -> list[tuple]:
    result = await asyncio.to_thread(stores.clickhouse.query, sql, parameters=parameters)
    return result.result_rows


@router.get("/analytics/revenue", response_model=Revenue)
async def revenue(tenant: Tenant, stores: StoresDep, wait: WaitSeconds, response: Response,
                  start: Annotated[date | None, Query(alias="from", ge=EARLIEST, le=LATEST)] = None,
                  end: Annotated[date | None, Query(alias="to", description="Exclusive", ge=EARLIEST,
                                                    le=LATEST)] = None,
                  granularity: Literal["day", "week", "month"] = "day", min_position: MinPosition = None) -> Any:
    end = end or date.today() + timedelta(days=1)
    start = start or end - timedelta(days=90)
    if start >= end:
        raise InvalidQuery("from must be before to", "from")
    tables = Tables(stores.namespace)
    served = await wait_for(lambda: read_checkpoint(stores.clickhouse, tables, served=True), min_position, wait)
    rows = await _query(stores, revenue_sql(tables, granularity), {"tenant": tenant, "start": start, "end": end})
    served.stamp(response)
    return {"granularity": granularity, "consistency": served.model(),
            "rows": [{"period": p, "orders": n, "revenue": str(r)} for p, n, r in rows]}


@router.get("/analytics/top-products", response_model=TopProducts)
async def top_products(tenant: Tenant, stores: StoresDep, wait: WaitSeconds, response: Response,
                       by: Literal["revenue", "quantity"] = "revenue",
                       limit: Annotated[int, Query(ge=1, le=100)] = 10, min_position: MinPosition = None) -> Any:
    tables = Tables(stores.namespace)
    served = await wait_for(lambda: read_checkpoint(stores.clickhouse, tables, served=True), min_position, wait)
    rows = await _query(stores, top_products_sql(tables, by), {"tenant": tenant, "limit": limit})
    served.stamp(response)
    return {"consistency": served.model(), "rows": [
        {"product_id": str(pid), "name": name or "", "quantity": q, "revenue": str(r)} for pid, name, q, r in rows]}

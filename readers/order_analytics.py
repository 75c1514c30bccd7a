"""Analysts' questions: the canned ones from the ClickHouse rollups kept by the projection, free SQL over the
facts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from projections.layouts.order_analytics import PROJECTION, Tables, checkpoint_of, checkpoint_query
from projections.stores.clients import Stores
from projections.stores.embedded_writes import EMBEDDED_WRITES
from readers import examples
from readers.analytics_sql import Result
from readers.consistency import Consistency, ReadWait, Served, wait_for
from readers.deps import IsoDate, MinPosition, StoresDep, Tenant, Wait

router = APIRouter(tags=["analytics (ClickHouse)"])
PERIODS = {"day": "toDate", "week": "toMonday", "month": "toStartOfMonth"}
#: The range of ClickHouse's DateTime64.
EARLIEST, LATEST = date(1900, 4, 1), date(2299, 12, 31)
#: The same range for the schema, which has no bounds for dates but a pattern.
IN_RANGE = {
    "pattern": r"^(1900-(0[4-9]|1[0-2])|(190[1-9]|19[1-9][0-9]|2[0-2][0-9]{2})-(0[1-9]|1[0-2]))"
    r"-(0[1-9]|[12][0-9]|3[01])$"
}


class RevenueRow(BaseModel):
    period: date
    orders: int
    revenue: str


class Revenue(BaseModel):
    model_config = examples.example(examples.REVENUE)

    granularity: str
    rows: list[RevenueRow]
    consistency: Consistency


class ProductRow(BaseModel):
    product_id: str
    name: str
    quantity: int
    revenue: str


class TopProducts(BaseModel):
    model_config = examples.example(examples.TOP_PRODUCTS)

    rows: list[ProductRow]
    consistency: Consistency


@dataclass(frozen=True)
class DateRange:
    start: date
    end: date

    def parameters(self, tenant: str) -> dict[str, Any]:
        return {"tenant": tenant, "start": self.start, "end": self.end}

    @classmethod
    def last_days(cls, days: int, end: date | None = None) -> DateRange:
        """``days`` days up to ``end`` (exclusive; tomorrow by default, so today is in)."""
        end = end or date.today() + timedelta(days=1)
        return cls(end - timedelta(days=days), end)


async def _period(
    start: Annotated[IsoDate | None, Query(alias="from", ge=EARLIEST, le=LATEST, json_schema_extra=IN_RANGE)] = None,
    end: Annotated[
        IsoDate | None, Query(alias="to", description="Exclusive", ge=EARLIEST, le=LATEST, json_schema_extra=IN_RANGE)
    ] = None,
) -> DateRange:
    """Placing dates from (inclusive) to (exclusive); the last 90 days by default. A range with from on or after to
    is empty, and answers as one (no rows, zero counts): an empty range is a valid question."""
    default = DateRange.last_days(90, end)
    return DateRange(start or default.start, default.end)


Period = Annotated[DateRange, Depends(_period)]
#: The rollups' rows of a period: placing days (UTC), so the same orders as placing times from one date to another.
_IN_PERIOD = "tenant_id = %(tenant)s AND day >= %(start)s AND day < %(end)s"


def revenue_sql(t: Tables, granularity: str) -> str:
    return f"""
        SELECT {PERIODS[granularity]}(day) AS period, sum(orders - cancelled) AS kept, sum(revenue) AS revenue
        FROM {t.view("order_hours")}
        WHERE {_IN_PERIOD}
        GROUP BY period HAVING kept > 0 ORDER BY period"""


def top_products_sql(t: Tables, by: str) -> str:
    """The top products from their daily rollup, named from the products view once they are chosen."""
    return f"""
        SELECT chosen.product_id AS product_id, p.name AS name, chosen.quantity AS quantity, chosen.revenue AS revenue
        FROM (SELECT product_id, sum(quantity) AS quantity, sum(revenue) AS revenue
              FROM {t.view("product_days")} WHERE tenant_id = %(tenant)s
              GROUP BY product_id HAVING quantity > 0 ORDER BY {by} DESC, product_id LIMIT %(limit)s) AS chosen
        LEFT JOIN (SELECT product_id, name FROM {t.view("products")} WHERE tenant_id = %(tenant)s) AS p
          ON p.product_id = chosen.product_id
        ORDER BY chosen.{by} DESC, chosen.product_id"""


async def _query(stores: Stores, sql: str, parameters: dict[str, Any]) -> list[tuple]:
    # The readers' own clients: the projection's one runs a statement at a time, its batches' inserts among them.
    return (await stores.clickhouse_reads.query(sql, parameters)).result_rows


@router.get("/analytics/revenue", response_model=Revenue)
async def revenue(
    tenant: Tenant,
    stores: StoresDep,
    wait: Wait,
    response: Response,
    period: Period,
    granularity: Literal["day", "week", "month"] = "day",
    min_position: MinPosition = None,
) -> Any:
    tables, served = await _served(stores, min_position, wait, tenant)
    rows = await _query(stores, revenue_sql(tables, granularity), period.parameters(tenant))
    served.stamp(response)
    return {
        "granularity": granularity,
        "consistency": served.model(),
        "rows": [{"period": p, "orders": n, "revenue": str(r)} for p, n, r in rows],
    }


@router.get("/analytics/top-products", response_model=TopProducts)
async def top_products(
    tenant: Tenant,
    stores: StoresDep,
    wait: Wait,
    response: Response,
    by: Literal["revenue", "quantity"] = "revenue",
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    min_position: MinPosition = None,
) -> Any:
    tables, served = await _served(stores, min_position, wait, tenant)
    rows = await _query(stores, top_products_sql(tables, by), {"tenant": tenant, "limit": limit})
    served.stamp(response)
    return {
        "consistency": served.model(),
        "rows": [
            {"product_id": str(pid), "name": name or "", "quantity": q, "revenue": str(r)} for pid, name, q, r in rows
        ],
    }


class Summary(BaseModel):
    """Order figures of a period: average order value and revenue leave cancelled orders out."""

    model_config = examples.example(examples.SUMMARY)

    orders: int
    cancelled: int
    cancellation_rate: float
    revenue: str
    average_order_value: str
    discounted_orders: int
    discount_total: str
    discount_share_of_subtotal: float
    consistency: Consistency


class HourRow(BaseModel):
    hour: int
    orders: int
    revenue: str


class OrdersByHour(BaseModel):
    model_config = examples.example(examples.BY_HOUR)

    rows: list[HourRow]
    consistency: Consistency


def summary_sql(t: Tables) -> str:
    return f"""
        SELECT sum(orders), sum(cancelled), sum(revenue), sum(discounted), sum(discounts), sum(subtotals)
        FROM {t.view("order_hours")} WHERE {_IN_PERIOD}"""


def by_hour_sql(t: Tables) -> str:
    return f"""
        SELECT hour, sum(orders - cancelled) AS kept, sum(revenue) AS revenue
        FROM {t.view("order_hours")} WHERE {_IN_PERIOD}
        GROUP BY hour HAVING kept > 0 ORDER BY hour"""


@router.get("/analytics/summary", response_model=Summary)
async def summary(
    tenant: Tenant,
    stores: StoresDep,
    wait: Wait,
    response: Response,
    period: Period,
    min_position: MinPosition = None,
) -> Any:
    """Average order value, cancellation rate and what discounts cost, over placing dates (UTC)."""
    tables, served = await _served(stores, min_position, wait, tenant)
    [(orders, cancelled, revenue_, discounted, discounts, subtotals)] = await _query(
        stores, summary_sql(tables), period.parameters(tenant)
    )
    kept = orders - cancelled
    served.stamp(response)
    return {
        "orders": orders,
        "cancelled": cancelled,
        "cancellation_rate": round(cancelled / orders, 4) if orders else 0.0,
        "revenue": str(revenue_),
        "average_order_value": str(round(revenue_ / kept, 2) if kept else Decimal("0.00")),
        "discounted_orders": discounted,
        "discount_total": str(discounts),
        "discount_share_of_subtotal": round(float(discounts / subtotals), 4) if subtotals else 0.0,
        "consistency": served.model(),
    }


@router.get("/analytics/orders-by-hour", response_model=OrdersByHour)
async def orders_by_hour(
    tenant: Tenant,
    stores: StoresDep,
    wait: Wait,
    response: Response,
    period: Period,
    min_position: MinPosition = None,
) -> Any:
    """Non-cancelled orders and revenue per hour of the day (UTC) they were placed."""
    tables, served = await _served(stores, min_position, wait, tenant)
    rows = await _query(stores, by_hour_sql(tables), period.parameters(tenant))
    served.stamp(response)
    return {"consistency": served.model(), "rows": [{"hour": h, "orders": n, "revenue": str(r)} for h, n, r in rows]}


class SqlQuery(BaseModel):
    sql: str = Field(
        min_length=1,
        max_length=20_000,
        description="One SELECT over the views orders, order_lines, "
        "order_events, products and daily_orders; it sees only the caller's tenant",
        examples=["SELECT status, count() AS orders, sum(total) AS revenue FROM orders GROUP BY status"],
    )
    format: Literal["json", "csv"] = "json"


class SqlAnswer(BaseModel):
    model_config = examples.example(examples.SQL)

    columns: list[str]
    rows: list[list[Any]]
    consistency: Consistency


@router.post("/analytics/sql", response_model=SqlAnswer, responses={200: {"content": {"text/csv": {}}}})
async def analyst_sql(
    query: SqlQuery,
    tenant: Tenant,
    stores: StoresDep,
    wait: Wait,
    request: Request,
    response: Response,
    min_position: MinPosition = None,
) -> Any:
    """Ad-hoc SQL for analysts: read-only, limited in time, rows, bytes and memory, scoped to the caller's tenant,
    and a few at a time per tenant (429 with Retry-After past that)."""
    _tables, served = await _served(stores, min_position, wait, tenant)
    answer = await request.app.state.analyst_sql.run(tenant, query.sql, csv=query.format == "csv")
    if not isinstance(answer, Result):
        raw = Response(answer, media_type="text/csv")
        served.stamp(raw)
        return raw
    served.stamp(response)
    return {"columns": answer.columns, "rows": answer.rows, "consistency": served.model()}


async def _served(stores: Stores, min_position: int | None, wait: ReadWait, tenant: str) -> tuple[Tables, Served]:
    """The served version's names, and its checkpoint (of the tenant's partition) once it has reached
    ``min_position`` (or the wait is over)."""
    tables = Tables(stores.namespace)

    async def checkpoint(part: str) -> int:  # remembered between two writes to the embedded engine
        async def served() -> int:
            return checkpoint_of(await _query(stores, *checkpoint_query(tables, served=True, part=part)))

        return await EMBEDDED_WRITES.remembered(("served", tables.served_checkpoint, part), served)

    return tables, await wait_for(checkpoint, min_position, wait, PROJECTION, tenant)

"""The shipping dashboard, read from the Postgres dashboards database (its served views): what waits to ship, by
age and country, and what shipped today."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from projections.layouts.shipping_dashboard import PROJECTION, Tables, read_checkpoint
from projections.stores.clients import Stores
from readers import postgres_reads
from readers.consistency import Consistency, ReadWait, Served, wait_for
from readers.deps import MinPosition, StoresDep, Tenant, Wait
from readers.errors import InvalidQuery

router = APIRouter(tags=["shipping (Postgres)"])

#: What the queue's ``cursor`` looks like (take it as opaque, from ``next_cursor``): the last row's confirmation
#: time in microseconds since the Unix epoch, a dot, its order id's 32 hex digits. Every string of this form
#: is a place in the queue, so the schema says all the API refuses of a cursor.
CURSOR_PATTERN = r"^[0-9]{1,16}\.[0-9a-f]{32}$"
#: ``country``: an ISO 3166-1 alpha-2 code, or ``unknown`` for orders without a shipping address.
COUNTRY_PATTERN = r"^([A-Z]{2}|unknown)$"
UNKNOWN = "unknown"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The oldest ``older_than_hours`` asks for (about 11 years): past it, no order could match.
MAX_HOURS = 100_000


class WaitingOrder(BaseModel):
    order_id: str
    country: str | None = Field(description="ISO 3166-1 alpha-2; null when the order has no shipping address")
    city: str | None
    item_count: int = Field(description="The sum of its lines' quantities")
    confirmed_at: str
    age_hours: float = Field(description="Hours since it was confirmed")


class Queue(BaseModel):
    """Orders waiting to ship (confirmed, neither shipped nor cancelled), oldest confirmation first."""

    orders: list[WaitingOrder]
    next_cursor: str | None = Field(
        description="Pass as ``cursor`` for the next page; null on the last page",
        examples=["1785669300123456.5b0f6c1e8a434a0e9a510f2b8c1d9e77"],
    )
    consistency: Consistency


class CountryShipping(BaseModel):
    country: str | None = Field(description="ISO 3166-1 alpha-2; null for orders without a shipping address")
    waiting: int = Field(description="Orders confirmed and not yet shipped")
    oldest_waiting_hours: float | None = Field(description="Age of the oldest waiting order; null when none waits")
    shipped_today: int = Field(description="Orders shipped since 00:00 UTC today")


class ShippingTotals(BaseModel):
    waiting: int
    oldest_waiting_hours: float | None
    shipped_today: int


class Summary(BaseModel):
    """Per destination country (the unknown one last), and over all of them."""

    countries: list[CountryShipping]
    totals: ShippingTotals
    consistency: Consistency


def encode_cursor(confirmed_at: datetime, order_id: str) -> str:
    """The place after a row (its confirmation time and order id), as ``CURSOR_PATTERN`` describes it."""
    micros = (confirmed_at - EPOCH) // timedelta(microseconds=1)
    return f"{micros}.{uuid.UUID(order_id).hex}"


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (confirmed_at, order_id) of a cursor that matched ``CURSOR_PATTERN``; anything else is a 422 on it."""
    try:
        micros, order_id = cursor.split(".")
        return EPOCH + timedelta(microseconds=int(micros)), uuid.UUID(hex=order_id)
    except (ValueError, OverflowError):
        raise InvalidQuery("cursor: not a cursor this API returned", field="cursor") from None


def hours_since(moment: datetime | None, now: datetime) -> float | None:
    return None if moment is None else round((now - moment).total_seconds() / 3600, 2)


@router.get("/shipping/queue", response_model=Queue)
async def shipping_queue(
    tenant: Tenant,
    stores: StoresDep,
    wait: Wait,
    response: Response,
    country: Annotated[
        str | None, Query(pattern=COUNTRY_PATTERN, description="An ISO 3166-1 alpha-2 code, or `unknown`")
    ] = None,
    older_than_hours: Annotated[
        float | None, Query(ge=0, le=MAX_HOURS, description="Only orders confirmed at least this long ago")
    ] = None,
    cursor: Annotated[
        str | None, Query(pattern=CURSOR_PATTERN, description="The `next_cursor` of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    min_position: MinPosition = None,
) -> Any:
    """The tenant's orders waiting to ship, oldest confirmation first, a page at a time (keyset-paged)."""
    after = decode_cursor(cursor) if cursor is not None else None
    tables, served = await _served(stores, min_position, wait, tenant)
    now = datetime.now(UTC)
    where, params = ["tenant_id = :t", "status = 'confirmed'"], {"t": tenant, "n": limit + 1}
    if country == UNKNOWN:
        where.append("country IS NULL")
    elif country is not None:
        where.append("country = :country")
        params["country"] = country
    if older_than_hours is not None:
        where.append("confirmed_at <= :cutoff")
        params["cutoff"] = now - timedelta(hours=older_than_hours)
    if after is not None:
        where.append("(confirmed_at, order_id) > (:after_at, :after_id)")
        params["after_at"], params["after_id"] = after
    rows = await postgres_reads.rows(
        stores,
        f"SELECT order_id::text, country, city, item_count, confirmed_at FROM {tables.served} "
        f"WHERE {' AND '.join(where)} ORDER BY confirmed_at, order_id LIMIT :n",
        params,
    )
    page = rows[:limit]
    served.stamp(response)
    return {
        "orders": [
            {
                "order_id": r.order_id,
                "country": r.country,
                "city": r.city,
                "item_count": r.item_count,
                "confirmed_at": r.confirmed_at.astimezone(UTC).isoformat(),
                "age_hours": hours_since(r.confirmed_at, now),
            }
            for r in page
        ],
        "next_cursor": encode_cursor(page[-1].confirmed_at, page[-1].order_id) if len(rows) > limit else None,
        "consistency": served.model(),
    }


@router.get("/shipping/summary", response_model=Summary)
async def shipping_summary(
    tenant: Tenant, stores: StoresDep, wait: Wait, response: Response, min_position: MinPosition = None
) -> Any:
    """Per destination country: orders waiting, the oldest one's age, and orders shipped today (UTC)."""
    tables, served = await _served(stores, min_position, wait, tenant)
    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    rows = await postgres_reads.rows(
        stores,
        f"""
        SELECT country, count(*) FILTER (WHERE status = 'confirmed') AS waiting,
               min(confirmed_at) FILTER (WHERE status = 'confirmed') AS oldest,
               count(*) FILTER (WHERE status = 'shipped') AS shipped_today
        FROM {tables.served}
        WHERE tenant_id = :t AND (status = 'confirmed' OR (status = 'shipped' AND shipped_at >= :today))
        GROUP BY country ORDER BY country NULLS LAST""",
        {"t": tenant, "today": today},
    )
    oldest = min((r.oldest for r in rows if r.oldest is not None), default=None)
    served.stamp(response)
    return {
        "countries": [
            {
                "country": r.country,
                "waiting": r.waiting,
                "oldest_waiting_hours": hours_since(r.oldest, now),
                "shipped_today": r.shipped_today,
            }
            for r in rows
        ],
        "totals": {
            "waiting": sum(r.waiting for r in rows),
            "oldest_waiting_hours": hours_since(oldest, now),
            "shipped_today": sum(r.shipped_today for r in rows),
        },
        "consistency": served.model(),
    }


async def _served(stores: Stores, min_position: int | None, wait: ReadWait, tenant: str) -> tuple[Tables, Served]:
    """The served version's names, and its checkpoint (of the tenant's partition) once it has reached
    ``min_position`` (or the wait is over)."""
    tables = Tables(stores.namespace)

    async def read(part: str) -> int:
        return await postgres_reads.served_checkpoint(
            stores, read_checkpoint(stores.dashboards_for_reads, tables, served=True, part=part)
        )

    return tables, await wait_for(read, min_position, wait, PROJECTION, tenant)

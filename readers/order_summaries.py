"""Order detail pages, read from the Redis order summaries."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from pydantic import BaseModel

from projections.layouts.order_summaries import PROJECTION, ServedReader
from projections.stores.clients import Stores
from readers import examples
from readers.consistency import Consistency, Served, wait_for
from readers.deps import MinPosition, StoresDep, Tenant, Wait
from readers.errors import InvalidQuery, NotFound

router = APIRouter(tags=["order pages (Redis)"])
INVALID_CURSOR = "cursor is not an order of this customer; pass the next_cursor of the page before"


class Item(BaseModel):
    line_no: int
    product_id: str
    product_name: str
    quantity: int
    unit_price: str
    line_total: str


class OrderSummary(BaseModel):
    """Everything an order page shows; money as decimal strings."""

    model_config = examples.example(examples.ORDER)

    order_id: str
    tenant_id: str
    customer_id: str
    customer_name: str
    customer_email: str
    status: str
    items: list[Item]
    item_count: int
    subtotal: str
    discount_percent: str
    discount: str
    total: str
    discount_authorised_by: str | None
    note: str | None
    cancel_reason: str | None
    placed_at: str
    confirmed_at: str | None
    shipped_at: str | None
    cancelled_at: str | None
    updated_at: str
    version: int
    consistency: Consistency


@router.get("/orders/{order_id}", response_model=OrderSummary)
async def order_summary(
    order_id: uuid.UUID, tenant: Tenant, stores: StoresDep, wait: Wait, min_position: MinPosition = None
) -> Any:
    """The stored document is the answer: it goes out as stored, with the consistency added (the response model
    documents it; validating it again on every read would cost more than the read)."""
    reader, found = _reader(stores), {}

    async def read(part: str) -> int:  # the document comes with each checkpoint read: one round trip when no wait
        position, found["doc"] = await reader.order(str(order_id), part, tenant)
        return position

    served = await wait_for(read, min_position, wait, PROJECTION, tenant)
    doc = found["doc"]
    if doc is None or orjson.loads(doc)["tenant_id"] != tenant:
        raise NotFound(_missing(order_id, served))
    return served.answer(_with_consistency(doc, served.json()))


def _missing(order_id: uuid.UUID, served: Served) -> str:
    message = f"order {order_id} is not in this tenant's order summaries (position {served.position})"
    if served.stale:
        message += f"; the projection has not reached min_position {served.min_position} yet"
    return message


class CustomerOrders(BaseModel):
    """One page of a customer's orders, newest first; pass ``next_cursor`` back as ``cursor`` for the next."""

    model_config = examples.example(examples.CUSTOMER_ORDERS)

    orders: list[OrderSummary]
    next_cursor: str | None
    consistency: Consistency


@router.get("/customers/{customer_id}/orders", response_model=CustomerOrders)
async def customer_orders(
    customer_id: uuid.UUID,
    tenant: Tenant,
    stores: StoresDep,
    wait: Wait,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[uuid.UUID | None, Query(description="next_cursor of the page before")] = None,
    min_position: MinPosition = None,
) -> Any:
    reader, found = _reader(stores), dict[str, Any]()

    async def read(part: str) -> int:  # one script call: pointer, checkpoint, the page and what is left
        position, found["docs"], found["remaining"] = await reader.customer_orders(
            str(customer_id), str(cursor) if cursor else None, limit, tenant, part
        )
        return position

    served = await wait_for(read, min_position, wait, PROJECTION, tenant)
    if found["docs"] is None:  # one message whatever the cursor is, so it tells nothing of other tenants' orders
        raise InvalidQuery(INVALID_CURSOR, "cursor")
    docs = [(doc, orjson.loads(doc)) for doc in found["docs"]]
    docs = [(doc, parsed["order_id"]) for doc, parsed in docs if parsed["tenant_id"] == tenant]
    next_cursor = docs[-1][1] if docs and found["remaining"] > 0 else None
    consistency = served.json()
    orders = b",".join(_with_consistency(doc, consistency) for doc, _ in docs)
    return served.answer(
        b'{"orders":['
        + orders
        + b'],"next_cursor":'
        + orjson.dumps(next_cursor)
        + b',"consistency":'
        + consistency
        + b"}"
    )


def _with_consistency(doc: bytes, consistency: bytes) -> bytes:
    """A stored document (a JSON object) with the answer's ``consistency`` as its last member."""
    return doc[:-1] + b',"consistency":' + consistency + b"}"


def _reader(stores: Stores) -> ServedReader:
    """One per set of clients: it holds the scripts, registered (and hashed) once."""
    if "served_reader" not in stores.extra:
        stores.extra["served_reader"] = ServedReader(stores.redis, stores.namespace)
    return stores.extra["served_reader"]

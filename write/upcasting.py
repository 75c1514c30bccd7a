"""Upcasters: older event schemas lifted to the current one before any projection sees them.

Each upcaster turns ``(type, schema_version N)`` into version N + 1; reading the log
chains them until the event is current. The log itself is never rewritten.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from write import events as e
from write.events import StoredEvent

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]

#: (event type, version it reads) → the function returning the next version's payload.
UPCASTERS: dict[tuple[str, int], Upcaster] = {}
#: The schema version each type is written at now.
CURRENT: dict[str, int] = {}


def upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    def register(fn: Upcaster) -> Upcaster:
        UPCASTERS[(event_type, from_version)] = fn
        CURRENT[event_type] = max(CURRENT.get(event_type, e.CURRENT_SCHEMA_VERSION), from_version + 1)
        return fn

    return register


def upcast(event: StoredEvent) -> StoredEvent:
    """The event in its type's current schema (unchanged when it already is)."""
    payload, version = event.payload, event.schema_version
    while (step := UPCASTERS.get((event.type, version))) is not None:
        payload, version = step(payload), version + 1
    return event if version == event.schema_version else replace(event, payload=payload, schema_version=version)


def _order_snapshot_v0(payload: Payload) -> Payload:
    """Version 0 order events were flat: customer fields beside the order and ``lines`` without names' ids."""
    customer = {"id": payload["customer_id"], "name": payload["customer_name"], "email": payload["customer_email"]}
    items = [
        {
            "line_no": n,
            "product_id": line["product_id"],
            "product_name": line["product_name"],
            "quantity": line["quantity"],
            "unit_price": line["unit_price"],
            "line_total": line.get("line_total") or _times(line["unit_price"], line["quantity"]),
        }
        for n, line in enumerate(payload["lines"], start=1)
    ]
    order = {
        key: payload.get(key)
        for key in (
            "order_id",
            "status",
            "subtotal",
            "discount_percent",
            "discount",
            "total",
            "discount_authorised_by",
            "note",
            "cancel_reason",
            "placed_at",
            "confirmed_at",
            "shipped_at",
            "cancelled_at",
            "version",
        )
    }
    order.update(
        customer=customer,
        items=items,
        discount_percent=payload.get("discount_percent") or "0.00",
        discount=payload.get("discount") or "0.00",
    )
    return {"order": order}


def _times(price: str, quantity: int) -> str:
    from decimal import Decimal

    return str((Decimal(price) * quantity).quantize(Decimal("0.01")))


for _type in e.ORDER_EVENTS:
    upcaster(_type, 0)(_order_snapshot_v0)


@upcaster(e.ORDER_PLACED, 1)
def _order_placed_v1(payload: Payload) -> Payload:
    """OrderPlaced 1 had no shipping address: orders placed before addresses existed have none."""
    return {**payload, "shipping_address": None}

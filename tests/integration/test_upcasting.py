"""An event written in an old schema is lifted before projections see it: a rebuild projects it correctly."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from decimal import Decimal

from projections.base import Batch
from projections.registry import PROJECTIONS
from tests.conftest import NAMESPACE
from write import event_log
from write.event_log import EventLog
from write.events import NewEvent

OLD_ORDER = {
    "order_id": None,
    "customer_id": str(uuid.uuid4()),
    "customer_name": "Amélie Old",
    "customer_email": "a@old.io",
    "status": "confirmed",
    "lines": [{"product_id": str(uuid.uuid4()), "product_name": "Legacy Lamp", "quantity": 3, "unit_price": "4.10"}],
    "subtotal": "12.30",
    "total": "12.30",
    "discount_authorised_by": None,
    "note": None,
    "cancel_reason": None,
    "placed_at": "2025-06-01T10:00:00+00:00",
    "confirmed_at": "2025-06-01T11:00:00+00:00",
    "shipped_at": None,
    "cancelled_at": None,
    "version": 2,
}


async def test_a_rebuild_projects_an_old_schema_event(write_engine, stores, tenant):
    order_id = uuid.uuid4()
    old = NewEvent("order", order_id, 2, "OrderConfirmed", OLD_ORDER | {"order_id": str(order_id)}, schema_version=0)
    async with write_engine.connect() as conn:
        async with conn.begin():
            await EventLog().append(conn, tenant, [old])
        position = await event_log.committed_position(conn, old.event_id)
        [event] = await event_log.read_after(conn, position - 1, 1)
    assert event.schema_version == 1 and event.payload["order"]["customer"]["name"] == "Amélie Old"

    summaries = PROJECTIONS["order_summaries"](replace(stores, namespace=f"{NAMESPACE}_upcast"))
    dashboards = PROJECTIONS["customer_dashboards"](replace(stores, namespace=f"{NAMESPACE}_upcast"))
    for projection in (summaries, dashboards):
        await projection.drop()
        await projection.setup()
        await projection.apply(Batch([event], position))
    state = await summaries.state()
    doc = json.loads(state[f"order:{order_id}"][b"doc"])
    assert (doc["customer_name"], doc["status"], doc["total"]) == ("Amélie Old", "confirmed", "12.30")
    assert doc["items"][0] | {"name_position": 0} == {
        "line_no": 1,
        "product_id": OLD_ORDER["lines"][0]["product_id"],
        "product_name": "Legacy Lamp",
        "quantity": 3,
        "unit_price": "4.10",
        "line_total": "12.30",
        "name_position": 0,
    }
    dash = await dashboards.state()
    assert [(row[3], row[4]) for row in dash["dash_orders_v1"] if row[0] == order_id] == [
        ("confirmed", Decimal("12.30"))
    ]

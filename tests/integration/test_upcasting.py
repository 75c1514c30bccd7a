"""An event written in an old schema is lifted before projections see it: a rebuild projects it correctly."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from projections.base import Batch
from projections.registry import PROJECTIONS
from tests.conftest import NAMESPACE
from workers.catch_up import catch_up
from write import commands as c
from write import domain, event_log, snapshots
from write import events as e
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


async def _old_order_placed(bus, write_engine, tenant: str) -> tuple[uuid.UUID, int]:
    """An OrderPlaced as it was written before shipping addresses: schema 1, the order's snapshot alone."""
    buyer_id = uuid.UUID((await bus.execute(c.RegisterCustomer(tenant, "Old Buyer", "old@buyer.io"))).id)
    product_id = uuid.UUID((await bus.execute(c.AddProduct(tenant, "Old Kettle", Decimal("20.00")))).id)
    line = domain.Line(1, product_id, "Old Kettle", 2, Decimal("20.00"))
    order = domain.Order(uuid.uuid4(), tenant, buyer_id, domain.PENDING, (line,), datetime.now(UTC))
    buyer = type("Buyer", (), {"id": buyer_id, "name": "Old Buyer", "email": "old@buyer.io"})
    old = NewEvent(e.ORDER, order.id, 1, e.ORDER_PLACED, {"order": snapshots.order(order, buyer)}, schema_version=1)
    async with write_engine.connect() as conn:
        async with conn.begin():
            await EventLog().append(conn, tenant, [old])
        return order.id, await event_log.committed_position(conn, old.event_id)


async def test_an_order_placed_1_reads_as_2_without_an_address(bus, write_engine, tenant):
    order_id, position = await _old_order_placed(bus, write_engine, tenant)
    async with write_engine.connect() as conn:
        [raw] = await event_log.read_after(conn, position - 1, 1, upcasting=False)
        [event] = await event_log.read_after(conn, position - 1, 1)
    assert (raw.schema_version, "shipping_address" in raw.payload) == (1, False), "the log is never rewritten"
    assert (event.schema_version, event.payload["shipping_address"]) == (2, None)
    assert event.payload["order"] == raw.payload["order"] and event.payload["order"]["order_id"] == str(order_id)


async def test_every_projection_applies_an_order_placed_1(bus, write_engine, tenant, projections):
    order_id, position = await _old_order_placed(bus, write_engine, tenant)
    for projection in projections.values():
        progress = await catch_up(write_engine, projection, batch_size=500)
        assert (progress.skipped, progress.halted, progress.parked) == (False, False, []), projection.name
        assert progress.checkpoint >= position, projection.name
    summaries = projections["order_summaries"]
    doc = json.loads(await summaries.redis.hget(summaries.keys.order(str(order_id)), "doc"))
    assert (doc["status"], doc["total"], doc["customer_name"]) == ("pending", "40.00", "Old Buyer")


async def test_an_order_placed_1_ships_to_an_unknown_country(bus, write_engine, tenant, projections):
    order_id, position = await _old_order_placed(bus, write_engine, tenant)
    shipping = projections["shipping_dashboard"]
    progress = await catch_up(write_engine, shipping, batch_size=500)
    assert progress.checkpoint >= position
    assert (await shipping.fingerprints(tenant))[str(order_id)] == ("pending", None, None, 2, None, None)

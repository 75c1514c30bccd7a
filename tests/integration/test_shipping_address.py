"""PlaceOrder's shipping address on the real write database: its columns, and OrderPlaced 2 carrying it."""

from __future__ import annotations

import uuid
from dataclasses import replace
from decimal import Decimal

import pytest
from sqlalchemy import text

from tests.integration.test_commands import totals
from write import commands as c
from write import event_log
from write.addresses import ShippingAddress
from write.errors import InvalidCommand

ADDRESS = ShippingAddress(
    recipient="  Zoë Dupré ",
    street_lines=("12 rue des Lilas", " Bâtiment B"),
    city="Lyon",
    country="FR",
    postal_code="69003",
)
CARRIED = {
    "recipient": "Zoë Dupré",
    "street_lines": ["12 rue des Lilas", "Bâtiment B"],
    "city": "Lyon",
    "postal_code": "69003",
    "country": "FR",
}


@pytest.fixture
async def shop(bus, tenant):
    customer = uuid.UUID((await bus.execute(c.RegisterCustomer(tenant, "Zoë", "zoe@x.io"))).id)
    product = uuid.UUID((await bus.execute(c.AddProduct(tenant, "Kettle", Decimal("30.00")))).id)
    return {"tenant": tenant, "customer": customer, "product": product}


async def _placed(write_engine, order_id: str):
    async with write_engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT shipping_recipient, shipping_street_lines, shipping_city, shipping_postal_code, "
                    "shipping_country FROM orders WHERE id = :id"
                ),
                {"id": order_id},
            )
        ).one()
        position = await event_log.committed_position(conn, await _event_id(conn, order_id))
        [raw] = await event_log.read_after(conn, position - 1, 1, upcasting=False)
        [read] = await event_log.read_after(conn, position - 1, 1)
    return tuple(row), raw, read


async def _event_id(conn, order_id: str) -> uuid.UUID:
    query = text("SELECT event_id FROM events WHERE aggregate_id = :id AND type = 'OrderPlaced'")
    return (await conn.execute(query, {"id": order_id})).scalar_one()


async def test_an_order_placed_with_an_address_stores_it_and_its_event_carries_it(bus, write_engine, shop):
    line = (c.OrderLine(shop["product"], 1),)
    result = await bus.execute(c.PlaceOrder(shop["tenant"], shop["customer"], line, shipping_address=ADDRESS))
    row, raw, read = await _placed(write_engine, result.id)
    assert row == ("Zoë Dupré", ["12 rue des Lilas", "Bâtiment B"], "Lyon", "69003", "FR"), "stored trimmed"
    assert (raw.type, raw.schema_version, raw.payload["shipping_address"]) == ("OrderPlaced", 2, CARRIED)
    assert read == raw, "a current event reads back as written"
    assert raw.payload["order"]["total"] == "30.00" and "shipping_address" not in raw.payload["order"]


async def test_an_order_placed_without_an_address_carries_null(bus, write_engine, shop):
    result = await bus.execute(c.PlaceOrder(shop["tenant"], shop["customer"], (c.OrderLine(shop["product"], 2),)))
    row, raw, _ = await _placed(write_engine, result.id)
    assert row == (None, None, None, None, None)
    assert (raw.schema_version, raw.payload["shipping_address"]) == (2, None)


async def test_later_order_commands_keep_the_address(bus, write_engine, shop):
    line = (c.OrderLine(shop["product"], 1),)
    placed = await bus.execute(c.PlaceOrder(shop["tenant"], shop["customer"], line, shipping_address=ADDRESS))
    await bus.execute(c.ConfirmOrder(shop["tenant"], uuid.UUID(placed.id), 1))
    row, _, _ = await _placed(write_engine, placed.id)
    assert row[0] == "Zoë Dupré" and row[4] == "FR"


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"country": "fr"}, "shipping_address.country"),
        ({"country": "QQ"}, "shipping_address.country"),
        ({"recipient": " "}, "shipping_address.recipient"),
        ({"street_lines": ()}, "shipping_address.street_lines"),
        ({"street_lines": ("ok", "bad\nline")}, "shipping_address.street_lines.1"),
        ({"city": "x" * 101}, "shipping_address.city"),
        ({"postal_code": "12_34"}, "shipping_address.postal_code"),
    ],
)
async def test_a_bad_address_is_refused_and_writes_nothing(bus, write_engine, shop, changes, field):
    """The domain checks what reaches the bus without the API too (imports, the demo, the bench)."""
    before = await totals(write_engine, shop["tenant"])
    bad = replace(ADDRESS, **changes)
    with pytest.raises(InvalidCommand) as refused:
        await bus.execute(
            c.PlaceOrder(shop["tenant"], shop["customer"], (c.OrderLine(shop["product"], 1),), shipping_address=bad)
        )
    assert refused.value.field == field
    assert await totals(write_engine, shop["tenant"]) == before

"""Commands on the real write database: rules, versions, idempotency, and nothing written on any error."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import text

from write import commands as c
from write.bus import Idempotency
from write.errors import (
    Conflict,
    DuplicateValue,
    IdempotencyMismatch,
    IllegalTransition,
    InvalidCommand,
    NotFound,
    VersionConflict,
)


async def totals(engine, tenant: str) -> dict[str, int]:
    tables = ("customers", "products", "orders", "events")
    async with engine.connect() as conn:
        counts = {
            t: (await conn.execute(text(f"SELECT count(*) FROM {t} WHERE tenant_id = :t"), {"t": tenant})).scalar()
            for t in tables
        }
        counts["order_items"] = (
            await conn.execute(
                text("SELECT count(*) FROM order_items i JOIN orders o ON o.id = i.order_id WHERE o.tenant_id = :t"),
                {"t": tenant},
            )
        ).scalar()
    return counts


@pytest.fixture
async def shop(bus, tenant):
    customer = uuid.UUID((await bus.execute(c.RegisterCustomer(tenant, "Ana", "ana@x.io"))).id)
    product = uuid.UUID((await bus.execute(c.AddProduct(tenant, "Widget", Decimal("2.50")))).id)
    order = uuid.UUID((await bus.execute(c.PlaceOrder(tenant, customer, (c.OrderLine(product, 2),)))).id)
    return {"tenant": tenant, "customer": customer, "product": product, "order": order}


async def test_place_order_writes_state_and_event_in_one_go(bus, write_engine, shop):
    before = await totals(write_engine, shop["tenant"])
    result = await bus.execute(c.PlaceOrder(shop["tenant"], shop["customer"], (c.OrderLine(shop["product"], 3),)))
    after = await totals(write_engine, shop["tenant"])
    assert (result.version, after["orders"] - before["orders"], after["events"] - before["events"]) == (1, 1, 1)
    async with write_engine.connect() as conn:
        row = (await conn.execute(text("SELECT total FROM orders WHERE id = :id"), {"id": result.id})).one()
        event = (
            await conn.execute(
                text("SELECT type, payload, position FROM events WHERE aggregate_id = :id"), {"id": result.id}
            )
        ).one()
    assert row.total == Decimal("7.50")
    assert (event.type, event.payload["order"]["total"], event.position) == ("OrderPlaced", "7.50", result.position)


def bad_commands(shop: dict) -> list[tuple[object, type]]:
    t, cust, prod, order = shop["tenant"], shop["customer"], shop["product"], shop["order"]
    return [
        (c.PlaceOrder(t, cust, ()), InvalidCommand),
        (c.PlaceOrder(t, cust, (c.OrderLine(prod, 0),)), InvalidCommand),
        (c.PlaceOrder(t, uuid.uuid4(), (c.OrderLine(prod, 1),)), NotFound),
        (c.PlaceOrder(t, cust, (c.OrderLine(prod, 1), c.OrderLine(uuid.uuid4(), 1))), NotFound),
        (c.PlaceOrder("no-such-tenant", cust, (c.OrderLine(prod, 1),)), NotFound),
        (c.ApplyDiscount(t, order, 1, Decimal("0"), "Dana"), InvalidCommand),
        (c.ApplyDiscount(t, order, 1, Decimal("101"), "Dana"), InvalidCommand),
        (c.ShipOrder(t, order, 1), IllegalTransition),
        (c.ConfirmOrder(t, order, 7), VersionConflict),
        (c.ConfirmOrder(t, uuid.uuid4(), 1), NotFound),
        (c.RegisterCustomer(t, "Ana again", "ANA@x.io"), DuplicateValue),
        (c.RegisterCustomer(t, "", "x@x.io"), InvalidCommand),
        (c.ChangeCustomerEmail(t, cust, "not-an-email", 1), InvalidCommand),
        (c.AddProduct(t, "Free", Decimal("0")), InvalidCommand),
        (c.ChangeProductPrice(t, prod, Decimal("1.999"), 1), InvalidCommand),
        (c.RenameProduct(t, prod, "New", 2), VersionConflict),
        (c.RegisterTenant(t, "again"), Conflict),
    ]


async def test_every_bad_command_fails_clearly_and_writes_nothing(bus, write_engine, shop):
    before = await totals(write_engine, shop["tenant"])
    for command, error in bad_commands(shop):
        with pytest.raises(error) as caught:
            await bus.execute(command)
        assert caught.value.message, command
    assert await totals(write_engine, shop["tenant"]) == before


async def test_products_of_another_tenant_are_not_found(bus, shop):
    other = f"o-{uuid.uuid4().hex[:6]}"
    await bus.execute(c.RegisterTenant(other, "Other"))
    stranger = uuid.UUID((await bus.execute(c.RegisterCustomer(other, "Bo", "bo@x.io"))).id)
    with pytest.raises(NotFound):
        await bus.execute(c.PlaceOrder(other, stranger, (c.OrderLine(shop["product"], 1),)))


async def test_email_taken_by_a_rename_is_a_conflict_and_changes_nothing(bus, write_engine, shop):
    other = uuid.UUID((await bus.execute(c.RegisterCustomer(shop["tenant"], "Bo", "bo@x.io"))).id)
    before = await totals(write_engine, shop["tenant"])
    with pytest.raises(DuplicateValue, match=r"ana@x.io"):
        await bus.execute(c.ChangeCustomerEmail(shop["tenant"], other, "ana@x.io", 1))
    assert await totals(write_engine, shop["tenant"]) == before


async def test_concurrent_commands_on_one_version_let_exactly_one_win(bus, write_engine, shop):
    attempts = [bus.execute(c.ConfirmOrder(shop["tenant"], shop["order"], 1)) for _ in range(5)]
    attempts += [bus.execute(c.CancelOrder(shop["tenant"], shop["order"], "changed my mind", 1)) for _ in range(5)]
    results = await asyncio.gather(*attempts, return_exceptions=True)
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, (VersionConflict, IllegalTransition)) for r in results if isinstance(r, Exception))
    async with write_engine.connect() as conn:
        versions = (
            (
                await conn.execute(
                    text("SELECT aggregate_version FROM events WHERE aggregate_id = :o ORDER BY position"),
                    {"o": shop["order"]},
                )
            )
            .scalars()
            .all()
        )
        row_version = (
            await conn.execute(text("SELECT version FROM orders WHERE id = :o"), {"o": shop["order"]})
        ).scalar()
    assert versions == [1, 2] and row_version == 2


async def test_a_rename_racing_orders_never_logs_an_older_name_after_a_newer_one(bus, write_engine, shop):
    """Each OrderPlaced carries the product's name as the log has it at that event's position."""
    tenant, product = shop["tenant"], shop["product"]

    async def renames() -> None:
        for version in range(1, 16):
            await bus.execute(c.RenameProduct(tenant, product, f"Widget mark {version + 1}", version))

    async def orders() -> None:
        for _ in range(15):
            await bus.execute(c.PlaceOrder(tenant, shop["customer"], (c.OrderLine(product, 1),)))

    await asyncio.gather(renames(), *(orders() for _ in range(6)))
    async with write_engine.connect() as conn:
        logged = (
            await conn.execute(
                text("SELECT type, payload FROM events WHERE tenant_id = :t ORDER BY position"), {"t": tenant}
            )
        ).all()
    name, stale, placed = None, [], 0
    for event_type, payload in logged:
        if event_type in ("ProductAdded", "ProductRenamed"):
            name = payload["name"]
        elif event_type == "OrderPlaced":
            placed += 1
            stale += [line["product_name"] for line in payload["order"]["items"] if line["product_name"] != name]
    assert placed == 1 + 6 * 15 and name == "Widget mark 16"
    assert stale == [], f"{len(stale)} orders logged a name older than the log's: {stale[:3]}"


async def test_same_idempotency_key_returns_the_first_result(bus, write_engine, shop):
    key = Idempotency("k-1", "hash-a")
    command = c.PlaceOrder(shop["tenant"], shop["customer"], (c.OrderLine(shop["product"], 1),))
    first = await bus.execute(command, key)
    before = await totals(write_engine, shop["tenant"])
    again = await asyncio.gather(*(bus.execute(command, key) for _ in range(3)))
    assert all(r == first for r in again)
    assert await totals(write_engine, shop["tenant"]) == before
    with pytest.raises(IdempotencyMismatch):
        await bus.execute(command, Idempotency("k-1", "hash-b"))


async def test_racing_first_uses_of_a_key_write_once(bus, write_engine, shop):
    before = await totals(write_engine, shop["tenant"])
    command = c.PlaceOrder(shop["tenant"], shop["customer"], (c.OrderLine(shop["product"], 1),))
    results = await asyncio.gather(*(bus.execute(command, Idempotency("race", "h")) for _ in range(4)))
    assert len(set(results)) == 1, "every racer answers the same id, version and position"
    after = await totals(write_engine, shop["tenant"])
    assert (after["orders"], after["events"]) == (before["orders"] + 1, before["events"] + 1)

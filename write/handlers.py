"""One handler per command: load, decide with the domain, save state and events.

Each handler returns the aggregate's id, its new version and the events to log;
the unit of work writes those events in the same transaction as the state.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from write import addresses, domain, repository, snapshots
from write import commands as c
from write import events as e
from write.domain import Line, Order
from write.errors import Conflict, DuplicateValue
from write.schema import customers, products, tenants

#: A changed email that another customer holds fails on this constraint; the bus maps it to 409.
EMAIL_KEY = "customers_tenant_email_key"
Outcome = tuple[Any, int, list[e.NewEvent]]
Handler = Callable[[AsyncConnection, Any], Awaitable[Outcome]]


def _now() -> datetime:
    return datetime.now(UTC)


async def register_tenant(conn: AsyncConnection, cmd: c.RegisterTenant) -> Outcome:
    name = domain.check_name(cmd.name)
    statement = pg_insert(tenants).values(id=cmd.tenant_id, name=name, version=1).on_conflict_do_nothing()
    if (await conn.execute(statement.returning(tenants.c.id))).first() is None:
        raise Conflict(f"tenant {cmd.tenant_id!r} is already registered", "id")
    tenant_uuid = uuid.uuid5(uuid.NAMESPACE_URL, f"prism:tenant:{cmd.tenant_id}")
    event = e.NewEvent(e.TENANT, tenant_uuid, 1, e.TENANT_REGISTERED, {"tenant_id": cmd.tenant_id, "name": name})
    return cmd.tenant_id, 1, [event]


def email_taken(email: str) -> DuplicateValue:
    return DuplicateValue(f"email {email!r} is already used by another customer of this tenant", "email")


async def register_customer(conn: AsyncConnection, cmd: c.RegisterCustomer) -> Outcome:
    await repository.require_tenant(conn, cmd.tenant_id)
    values = {
        "id": uuid.uuid4(),
        "tenant_id": cmd.tenant_id,
        "name": domain.check_name(cmd.name),
        "email": domain.check_email(cmd.email),
        "version": 1,
    }
    statement = pg_insert(customers).values(values).on_conflict_do_nothing(constraint=EMAIL_KEY)
    row = (await conn.execute(statement.returning(*customers.c))).first()
    if row is None:
        raise email_taken(str(values["email"]))
    return row.id, 1, [e.NewEvent(e.CUSTOMER, row.id, 1, e.CUSTOMER_REGISTERED, snapshots.customer(row))]


async def _change_customer(conn: AsyncConnection, cmd: Any, event_type: str, **values: str) -> Outcome:
    current = await repository.customer(conn, cmd.tenant_id, cmd.customer_id, lock="update")
    domain.check_version("customer", cmd.customer_id, current.version, cmd.expected_version)
    version = current.version + 1
    statement = update(customers).where(customers.c.id == cmd.customer_id).values(version=version, **values)
    row = (await conn.execute(statement.returning(*customers.c))).one()
    return row.id, version, [e.NewEvent(e.CUSTOMER, row.id, version, event_type, snapshots.customer(row))]


async def change_customer_email(conn: AsyncConnection, cmd: c.ChangeCustomerEmail) -> Outcome:
    email = domain.check_email(cmd.email)
    return await _change_customer(conn, cmd, e.CUSTOMER_EMAIL_CHANGED, email=email)


async def change_customer_name(conn: AsyncConnection, cmd: c.ChangeCustomerName) -> Outcome:
    name = domain.check_name(cmd.name)
    return await _change_customer(conn, cmd, e.CUSTOMER_RENAMED, name=name)


async def add_product(conn: AsyncConnection, cmd: c.AddProduct) -> Outcome:
    await repository.require_tenant(conn, cmd.tenant_id)
    values = {
        "id": uuid.uuid4(),
        "tenant_id": cmd.tenant_id,
        "name": domain.check_name(cmd.name),
        "price": domain.check_price(cmd.price),
        "sku": cmd.sku,
        "version": 1,
    }
    row = (await conn.execute(insert(products).values(values).returning(*products.c))).one()
    return row.id, 1, [e.NewEvent(e.PRODUCT, row.id, 1, e.PRODUCT_ADDED, snapshots.product(row))]


async def _change_product(conn: AsyncConnection, cmd: Any, event_type: str, **values: Any) -> Outcome:
    current = await repository.product(conn, cmd.tenant_id, cmd.product_id)
    domain.check_version("product", cmd.product_id, current.version, cmd.expected_version)
    version = current.version + 1
    statement = update(products).where(products.c.id == cmd.product_id).values(version=version, **values)
    row = (await conn.execute(statement.returning(*products.c))).one()
    return row.id, version, [e.NewEvent(e.PRODUCT, row.id, version, event_type, snapshots.product(row))]


async def rename_product(conn: AsyncConnection, cmd: c.RenameProduct) -> Outcome:
    return await _change_product(conn, cmd, e.PRODUCT_RENAMED, name=domain.check_name(cmd.name))


async def change_product_price(conn: AsyncConnection, cmd: c.ChangeProductPrice) -> Outcome:
    return await _change_product(conn, cmd, e.PRODUCT_PRICE_CHANGED, price=domain.check_price(cmd.price))


async def place_order(conn: AsyncConnection, cmd: c.PlaceOrder) -> Outcome:
    domain.check_lines([(item.product_id, item.quantity) for item in cmd.items])
    note = domain.check_note(cmd.note)
    address = addresses.check_address(cmd.shipping_address)
    buyer = await repository.customer(conn, cmd.tenant_id, cmd.customer_id)
    catalogue = await repository.products_for_share(conn, cmd.tenant_id, [i.product_id for i in cmd.items])
    lines = tuple(
        Line(n, i.product_id, catalogue[i.product_id].name, i.quantity, catalogue[i.product_id].price)
        for n, i in enumerate(cmd.items, start=1)
    )
    placed = Order(
        uuid.uuid4(), cmd.tenant_id, buyer.id, domain.PENDING, lines, _now(), note=note, shipping_address=address
    )
    domain.check_total(placed)
    await repository.add_order(conn, placed)
    shipping = snapshots.shipping_address(placed)
    return placed.id, 1, [_order_event(placed, buyer, e.ORDER_PLACED, shipping_address=shipping)]


def _order_event(o: Order, buyer: Any, event_type: str, **extra: Any) -> e.NewEvent:
    payload = {"order": snapshots.order(o, buyer), **extra}
    return e.NewEvent(e.ORDER, o.id, o.version, event_type, payload, schema_version=e.schema_version(event_type))


async def _change_order(
    conn: AsyncConnection, cmd: c.OrderCommand, decide: Callable[[Order], Order], event_type: str, **extra: Any
) -> Outcome:
    current, _ = await repository.order(conn, cmd.tenant_id, cmd.order_id)
    domain.check_version("order", cmd.order_id, current.version, cmd.expected_version)
    changed = decide(current)
    buyer = await repository.customer(conn, cmd.tenant_id, current.customer_id)
    await repository.save_order(conn, changed)
    return changed.id, changed.version, [_order_event(changed, buyer, event_type, **extra)]


async def confirm_order(conn: AsyncConnection, cmd: c.ConfirmOrder) -> Outcome:
    return await _change_order(conn, cmd, lambda o: o.confirm(_now()), e.ORDER_CONFIRMED)


async def ship_order(conn: AsyncConnection, cmd: c.ShipOrder) -> Outcome:
    return await _change_order(conn, cmd, lambda o: o.ship(_now()), e.ORDER_SHIPPED)


async def cancel_order(conn: AsyncConnection, cmd: c.CancelOrder) -> Outcome:
    return await _change_order(conn, cmd, lambda o: o.cancel(cmd.reason, _now()), e.ORDER_CANCELLED, reason=cmd.reason)


async def apply_discount(conn: AsyncConnection, cmd: c.ApplyDiscount) -> Outcome:
    return await _change_order(
        conn,
        cmd,
        lambda o: o.apply_discount(cmd.percent, cmd.authorised_by),
        e.DISCOUNT_APPLIED,
        percent=str(cmd.percent),
        authorised_by=cmd.authorised_by,
    )


#: Each command type has exactly one handler.
HANDLERS: dict[type, Handler] = {
    c.RegisterTenant: register_tenant,
    c.RegisterCustomer: register_customer,
    c.ChangeCustomerEmail: change_customer_email,
    c.ChangeCustomerName: change_customer_name,
    c.AddProduct: add_product,
    c.RenameProduct: rename_product,
    c.ChangeProductPrice: change_product_price,
    c.PlaceOrder: place_order,
    c.ConfirmOrder: confirm_order,
    c.ShipOrder: ship_order,
    c.CancelOrder: cancel_order,
    c.ApplyDiscount: apply_discount,
}

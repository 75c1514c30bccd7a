"""A small but complete history written through the command bus: every command kind, renames included; orders
with shipping addresses in several countries and without, pending, confirmed, shipped and cancelled."""

from __future__ import annotations

import uuid
from decimal import Decimal

from write import commands as c
from write.addresses import ShippingAddress
from write.bus import CommandBus

#: Where the history's orders ship, in turn: None places an order without an address.
ADDRESSES = (
    ShippingAddress("Zoë Dupré", ("12 rue des Lilas",), "Lyon", "FR", "69003"),
    ShippingAddress("Kenji Watanabe", ("1-9-1 Marunouchi", "Chiyoda-ku"), "Tokyo", "JP", "100-0005"),
    None,
    ShippingAddress("Ana Souza", ("Rua Augusta 1500",), "São Paulo", "BR", "01304-001"),
    ShippingAddress("Li Wei", ("8 Finance Street",), "Hong Kong", "HK"),
)


async def write_history(bus: CommandBus, tenant: str, orders: int = 12) -> dict[str, list[str]]:
    customers, products, placed = [], [], []
    for n in range(3):
        customers.append((await bus.execute(c.RegisterCustomer(tenant, f"José Nuñez {n}", f"jose{n}@x.io"))).id)
    for n in range(3):
        products.append((await bus.execute(c.AddProduct(tenant, f"Widget {n}", Decimal("9.99") + n))).id)
    for n in range(orders):
        lines = (c.OrderLine(uuid.UUID(products[n % 3]), 1 + n % 4), c.OrderLine(uuid.UUID(products[(n + 1) % 3]), 2))
        address = ADDRESSES[n % len(ADDRESSES)]
        placed.append(
            (await bus.execute(c.PlaceOrder(tenant, uuid.UUID(customers[n % 3]), lines, shipping_address=address))).id
        )
    for n, order_id in enumerate(placed):
        oid = uuid.UUID(order_id)
        if n % 3 == 0:
            await bus.execute(c.ApplyDiscount(tenant, oid, 1, Decimal("10"), "Dana"))
            await bus.execute(c.ConfirmOrder(tenant, oid, 2))
            await bus.execute(c.ShipOrder(tenant, oid, 3))
        elif n % 3 == 1:
            await bus.execute(c.CancelOrder(tenant, oid, 1, "changed mind"))
        elif n % 6 == 2:  # confirmed, waiting to ship
            await bus.execute(c.ConfirmOrder(tenant, oid, 1))
    await bus.execute(c.ChangeCustomerName(tenant, uuid.UUID(customers[0]), "José Nuñez-Lima", 1))
    await bus.execute(c.ChangeCustomerEmail(tenant, uuid.UUID(customers[1]), "new1@x.io", 1))
    await bus.execute(c.RenameProduct(tenant, uuid.UUID(products[0]), "Widget Pro", 1))
    await bus.execute(c.ChangeProductPrice(tenant, uuid.UUID(products[1]), Decimal("19.99"), 1))
    late = (
        await bus.execute(c.PlaceOrder(tenant, uuid.UUID(customers[0]), (c.OrderLine(uuid.UUID(products[0]), 1),)))
    ).id
    return {"customers": customers, "products": products, "orders": [*placed, late]}

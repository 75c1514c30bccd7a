"""Commands: intents the write model accepts, as frozen values."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from write.addresses import ShippingAddress


@dataclass(frozen=True)
class Command:
    """Every command runs inside one tenant."""

    tenant_id: str


@dataclass(frozen=True)
class RegisterTenant(Command):
    name: str


@dataclass(frozen=True)
class RegisterCustomer(Command):
    name: str
    email: str


@dataclass(frozen=True)
class ChangeCustomerEmail(Command):
    customer_id: uuid.UUID
    email: str
    expected_version: int


@dataclass(frozen=True)
class ChangeCustomerName(Command):
    customer_id: uuid.UUID
    name: str
    expected_version: int


@dataclass(frozen=True)
class AddProduct(Command):
    name: str
    price: Decimal
    sku: str | None = None


@dataclass(frozen=True)
class RenameProduct(Command):
    product_id: uuid.UUID
    name: str
    expected_version: int


@dataclass(frozen=True)
class ChangeProductPrice(Command):
    product_id: uuid.UUID
    price: Decimal
    expected_version: int


@dataclass(frozen=True)
class OrderLine:
    product_id: uuid.UUID
    quantity: int


@dataclass(frozen=True)
class PlaceOrder(Command):
    customer_id: uuid.UUID
    items: tuple[OrderLine, ...]
    note: str | None = None
    shipping_address: ShippingAddress | None = None


@dataclass(frozen=True)
class OrderCommand(Command):
    order_id: uuid.UUID
    expected_version: int


@dataclass(frozen=True)
class ConfirmOrder(OrderCommand):
    pass


@dataclass(frozen=True)
class ShipOrder(OrderCommand):
    pass


@dataclass(frozen=True)
class CancelOrder(OrderCommand):
    reason: str = ""


@dataclass(frozen=True)
class ApplyDiscount(OrderCommand):
    percent: Decimal = Decimal("0")
    authorised_by: str = ""

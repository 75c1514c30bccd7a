"""Order rules and money arithmetic, free of I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from write.addresses import ShippingAddress
from write.errors import IllegalTransition, InvalidCommand, VersionConflict

CENT = Decimal("0.01")
PENDING, CONFIRMED, SHIPPED, CANCELLED = "pending", "confirmed", "shipped", "cancelled"

#: Allowed order status moves; shipped and cancelled are final.
TRANSITIONS = {PENDING: {CONFIRMED, CANCELLED}, CONFIRMED: {SHIPPED, CANCELLED}, SHIPPED: set(), CANCELLED: set()}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def money(value: Decimal | str | int) -> Decimal:
    """Two-place Decimal; floats are refused because they cannot hold cents exactly."""
    if isinstance(value, float):
        raise TypeError("money must not be a float")
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def check_version(kind: str, ident: object, current: int, expected: int) -> None:
    if current != expected:
        raise VersionConflict(
            f"{kind} {ident} is at version {current}, not the expected {expected}", "expected_version"
        )


def check_name(value: str, field: str = "name") -> str:
    value = value.strip()
    if not value or len(value) > 200:
        raise InvalidCommand(f"{field} must be 1 to 200 characters", field)
    return value


def check_email(value: str) -> str:
    value = value.strip().lower()
    if not _EMAIL.match(value) or len(value) > 254:
        raise InvalidCommand(f"email {value!r} is not a valid address", "email")
    return value


#: Money columns hold 12 digits, 2 after the point.
MONEY_LIMIT = Decimal("1e10")
#: Most lines one order may have.
MAX_LINES = 100


def check_price(value: Decimal) -> Decimal:
    # Range first: quantizing a huge value raises instead of answering.
    if not value.is_finite() or not Decimal("0") < value < MONEY_LIMIT or value != value.quantize(CENT):
        raise InvalidCommand("price must be positive, below 10,000,000,000, with at most 2 decimal places", "price")
    return money(value)


def check_total(order: Order) -> None:
    if order.subtotal >= MONEY_LIMIT:
        raise InvalidCommand("the order's total must be below 10,000,000,000", "items")


@dataclass(frozen=True)
class Line:
    line_no: int
    product_id: Any
    product_name: str
    quantity: int
    unit_price: Decimal

    @property
    def line_total(self) -> Decimal:
        return money(self.unit_price * self.quantity)


@dataclass(frozen=True)
class Order:
    """An order's state; every change returns a new Order one version up."""

    id: Any
    tenant_id: str
    customer_id: Any
    status: str
    lines: tuple[Line, ...]
    placed_at: datetime
    version: int = 1
    discount_percent: Decimal = Decimal("0")
    discount_authorised_by: str | None = None
    note: str | None = None
    cancel_reason: str | None = None
    confirmed_at: datetime | None = None
    shipped_at: datetime | None = None
    cancelled_at: datetime | None = None
    #: Given when the order is placed, never changed after.
    shipping_address: ShippingAddress | None = None

    @property
    def subtotal(self) -> Decimal:
        return money(sum((line.line_total for line in self.lines), Decimal("0")))

    @property
    def discount(self) -> Decimal:
        return money(self.subtotal * self.discount_percent / 100)

    @property
    def total(self) -> Decimal:
        return self.subtotal - self.discount

    def confirm(self, at: datetime) -> Order:
        return self._move(CONFIRMED, confirmed_at=at)

    def ship(self, at: datetime) -> Order:
        return self._move(SHIPPED, shipped_at=at)

    def cancel(self, reason: str, at: datetime) -> Order:
        if len(reason) > 500:
            raise InvalidCommand("reason must be at most 500 characters", "reason")
        return self._move(CANCELLED, cancelled_at=at, cancel_reason=reason.strip())

    def apply_discount(self, percent: Decimal, authorised_by: str) -> Order:
        if not percent.is_finite() or not Decimal("0") < percent <= Decimal("100") or percent != percent.quantize(CENT):
            raise InvalidCommand("percent must be above 0 and at most 100, with at most 2 decimal places", "percent")
        by = check_name(authorised_by, "authorised_by")
        if self.status not in (PENDING, CONFIRMED):
            raise IllegalTransition(f"order {self.id} is {self.status}: discounts apply only before shipping")
        return replace(self, discount_percent=percent, discount_authorised_by=by, version=self.version + 1)

    def _move(self, status: str, **changes: Any) -> Order:
        if status not in TRANSITIONS[self.status]:
            raise IllegalTransition(f"order {self.id} is {self.status} and cannot become {status}")
        return replace(self, status=status, version=self.version + 1, **changes)


def check_lines(quantities: list[tuple[Any, int]]) -> None:
    """At least one line, each quantity at least 1."""
    if not quantities:
        raise InvalidCommand("an order needs at least one item", "items")
    if len(quantities) > MAX_LINES:
        raise InvalidCommand(f"an order has at most {MAX_LINES} items", "items")
    for index, (_, quantity) in enumerate(quantities):
        if quantity < 1:
            raise InvalidCommand(f"items[{index}].quantity must be at least 1", f"items.{index}.quantity")
        if quantity > 10_000:
            raise InvalidCommand(f"items[{index}].quantity must be at most 10000", f"items.{index}.quantity")


def check_note(note: str | None) -> str | None:
    if note is not None and len(note) > 1000:
        raise InvalidCommand("note must be at most 1000 characters", "note")
    return note.strip() if note else None

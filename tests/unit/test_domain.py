import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from write import domain
from write.domain import Line, Order
from write.errors import IllegalTransition, InvalidCommand, VersionConflict

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def order(status: str = domain.PENDING, *prices: str) -> Order:
    lines = tuple(Line(n, uuid.uuid4(), f"p{n}", 3, Decimal(p)) for n, p in enumerate(prices or ("1.99",), 1))
    return Order(uuid.uuid4(), "t", uuid.uuid4(), status, lines, NOW)


def test_money_is_two_place_decimal_and_refuses_floats():
    assert domain.money("1.005") == Decimal("1.01")
    with pytest.raises(TypeError):
        domain.money(1.5)


def test_totals_are_exact_decimals():
    placed = order(domain.PENDING, "0.10", "0.20")
    assert placed.subtotal == Decimal("0.90")
    discounted = placed.apply_discount(Decimal("12.5"), "Dana")
    assert discounted.discount == Decimal("0.11")
    assert discounted.total == Decimal("0.79")
    assert discounted.version == 2


@pytest.mark.parametrize(
    "quantities, field", [([], "items"), ([(1, 0)], "items.0.quantity"), ([(1, 2), (2, -1)], "items.1.quantity")]
)
def test_lines_need_one_item_and_positive_quantities(quantities, field):
    with pytest.raises(InvalidCommand) as caught:
        domain.check_lines(quantities)
    assert caught.value.field == field


@pytest.mark.parametrize("percent", ["0", "-5", "100.01", "12.345", "NaN"])
def test_discount_must_be_above_zero_and_at_most_100(percent):
    with pytest.raises(InvalidCommand):
        order().apply_discount(Decimal(percent), "Dana")


def test_full_discount_is_allowed():
    assert order().apply_discount(Decimal("100"), "Dana").total == Decimal("0.00")


@pytest.mark.parametrize("status", [domain.SHIPPED, domain.CANCELLED])
def test_no_discount_after_shipping_or_cancelling(status):
    with pytest.raises(IllegalTransition):
        order(status).apply_discount(Decimal("10"), "Dana")


def test_lifecycle_moves_forward_only():
    confirmed = order().confirm(NOW)
    shipped = confirmed.ship(NOW)
    assert (confirmed.status, shipped.status, shipped.version) == ("confirmed", "shipped", 3)
    for illegal in (
        lambda: order().ship(NOW),
        lambda: shipped.cancel("late", NOW),
        lambda: confirmed.confirm(NOW),
        lambda: order().cancel("x", NOW).confirm(NOW),
    ):
        with pytest.raises(IllegalTransition):
            illegal()


def test_pending_and_confirmed_orders_can_be_cancelled():
    assert order().cancel("changed mind", NOW).cancel_reason == "changed mind"
    assert order().confirm(NOW).cancel("", NOW).status == domain.CANCELLED


def test_version_check_names_both_versions():
    with pytest.raises(VersionConflict, match="version 3, not the expected 2"):
        domain.check_version("order", "o-1", 3, 2)


@pytest.mark.parametrize("email", ["nope", "a@b", "a b@c.de", ""])
def test_bad_emails_are_refused(email):
    with pytest.raises(InvalidCommand):
        domain.check_email(email)


@pytest.mark.parametrize("price", ["0", "-1", "1.001", "Infinity"])
def test_prices_are_positive_with_cents(price):
    with pytest.raises(InvalidCommand):
        domain.check_price(Decimal(price))

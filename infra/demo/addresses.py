"""Shipping addresses for the demo's orders: a realistic spread of countries, formats and orders without one."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Orders placed without an address (collected in store, digital goods): about one in six.
WITHOUT_ADDRESS = 1 / 6
STREETS = ["Oak", "Maple", "Station", "Church", "Mill", "River", "Park", "Garden", "Bridge", "Market"]


def _digits(n: int) -> Callable[[random.Random], str]:
    return lambda rng: "".join(str(rng.randint(0, 9)) for _ in range(n))


def _pattern(shape: str) -> Callable[[random.Random], str]:
    """``9`` a digit, ``A`` a capital letter, anything else as is: "A9A 9A9" is a Canadian code."""
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    return lambda rng: "".join(
        str(rng.randint(0, 9)) if ch == "9" else rng.choice(letters) if ch == "A" else ch for ch in shape
    )


@dataclass(frozen=True)
class Country:
    code: str
    #: How many of the demo's addresses are in it, relative to the others.
    weight: int
    cities: tuple[str, ...]
    street: Callable[[random.Random], str]
    postal_code: Callable[[random.Random], str] | None


def _number_first(suffix: str) -> Callable[[random.Random], str]:
    return lambda rng: f"{rng.randint(1, 240)} {rng.choice(STREETS)} {suffix}"


def _number_last(prefix: str) -> Callable[[random.Random], str]:
    return lambda rng: f"{prefix}{rng.choice(STREETS)} {rng.randint(1, 240)}"


COUNTRIES = (
    Country("US", 9, ("New York", "Chicago", "Austin", "Seattle", "Denver"), _number_first("Street"), _digits(5)),
    Country("DE", 6, ("Berlin", "München", "Köln", "Hamburg"), _number_last("Am "), _digits(5)),
    Country("FR", 5, ("Paris", "Lyon", "Marseille", "Lille"), _number_first("rue du Moulin"), _digits(5)),
    Country("GB", 5, ("London", "Manchester", "Leeds", "Bristol"), _number_first("Road"), _pattern("AA9 9AA")),
    Country("CA", 3, ("Toronto", "Montréal", "Vancouver"), _number_first("Avenue"), _pattern("A9A 9A9")),
    Country("NL", 3, ("Amsterdam", "Utrecht", "Rotterdam"), _number_last(""), _pattern("9999 AA")),
    Country("ES", 3, ("Madrid", "Barcelona", "Sevilla"), _number_last("Calle "), _digits(5)),
    Country(
        "JP",
        3,
        ("Tokyo", "Osaka", "Sapporo"),
        lambda rng: f"{rng.randint(1, 9)}-{rng.randint(1, 30)} Chuo",
        _pattern("999-9999"),
    ),
    Country("BR", 2, ("São Paulo", "Rio de Janeiro"), _number_last("Rua "), _pattern("99999-999")),
    Country("AU", 2, ("Sydney", "Melbourne"), _number_first("Street"), _digits(4)),
    Country("SE", 1, ("Stockholm", "Göteborg"), _number_last(""), _pattern("999 99")),
    Country("PL", 1, ("Warszawa", "Kraków"), _number_last("ul. "), _pattern("99-999")),
    Country("IE", 1, ("Dublin", "Cork"), _number_first("Street"), _pattern("A99 A9A9")),
    Country("HK", 1, ("Hong Kong",), _number_first("Queen's Road"), None),
    Country("AE", 1, ("Dubai", "Abu Dhabi"), _number_first("Street"), None),
)
_WEIGHTS = [country.weight for country in COUNTRIES]


def shipping_address(rng: random.Random, buyer: str) -> dict[str, Any] | None:
    """An address as ``POST /orders`` takes it, or ``None`` for an order placed without one."""
    if rng.random() < WITHOUT_ADDRESS:
        return None
    country = rng.choices(COUNTRIES, _WEIGHTS)[0]
    lines = [country.street(rng)]
    if rng.random() < 0.3:
        lines.append(rng.choice(["Apartment", "Suite", "Floor", "Unit"]) + f" {rng.randint(1, 40)}")
    if rng.random() < 0.05:
        lines.append("c/o Reception")
    address = {
        "recipient": buyer if rng.random() < 0.85 else f"{buyer.split()[0]} (gift)",
        "street_lines": lines,
        "city": rng.choice(country.cities),
        "country": country.code,
    }
    if country.postal_code is not None:
        address["postal_code"] = country.postal_code(rng)
    return address


def body_field(rng: random.Random, buyer: str) -> dict[str, Any]:
    """``{"shipping_address": ...}`` to merge into an order's body, or nothing for an order without one."""
    address = shipping_address(rng, buyer)
    return {} if address is None else {"shipping_address": address}

"""Shipping addresses: their shape, their limits and the rules an order's address must meet, free of I/O.

An address is printed on a label and read by people and carriers in many countries, so its text is free
(any script) but single-line: control characters are refused, not only the NUL that Postgres cannot hold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from write.errors import InvalidCommand

#: Caps, in characters, after surrounding whitespace is stripped (the API's schema documents the same numbers).
RECIPIENT_MAX: Final = 200
STREET_LINE_MAX: Final = 200
STREET_LINES_MAX: Final = 3
CITY_MAX: Final = 100
POSTAL_CODE_MAX: Final = 16

#: Letters and digits, inner spaces and hyphens: every postal code format in use ("SW1A 1AA", "01310-100", "75008").
POSTAL_CODE_PATTERN: Final = r"^[A-Za-z0-9]([A-Za-z0-9 -]{0,14}[A-Za-z0-9])?$"
#: C0 and C1 control characters (tabs and newlines among them): a label's line holds none.
CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")

#: Every officially assigned ISO 3166-1 alpha-2 code (249; from the ISO 3166-1 table of Debian's iso-codes 4.15).
#: Kept here, not taken from a package, because the list changes a few times a decade and a check costs a set lookup.
_ASSIGNED: Final = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE
    BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD
    CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
    DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF
    GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU
    ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
    KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME
    MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA
    NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
    PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI
    SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK
    TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
    VN VU WF WS YE YT ZA ZM ZW
    """
COUNTRIES: Final = frozenset(_ASSIGNED.split())

_POSTAL_CODE = re.compile(POSTAL_CODE_PATTERN)
FIELD: Final = "shipping_address"


@dataclass(frozen=True)
class ShippingAddress:
    """Where an order goes. ``postal_code`` is optional: Hong Kong, the UAE and others have none."""

    recipient: str
    street_lines: tuple[str, ...]
    city: str
    country: str
    postal_code: str | None = None


def _text(value: str, field: str, cap: int) -> str:
    """One line of text: stripped, 1 to ``cap`` characters, no control characters."""
    if CONTROL.search(value):
        raise InvalidCommand(f"{field} must not contain control characters", field)
    value = value.strip()
    if not value or len(value) > cap:
        raise InvalidCommand(f"{field} must be 1 to {cap} characters", field)
    return value


def _street(lines: tuple[str, ...]) -> tuple[str, ...]:
    field = f"{FIELD}.street_lines"
    if not 1 <= len(lines) <= STREET_LINES_MAX:
        raise InvalidCommand(f"{field} must have 1 to {STREET_LINES_MAX} lines", field)
    return tuple(_text(line, f"{field}.{n}", STREET_LINE_MAX) for n, line in enumerate(lines))


def _postal_code(value: str | None) -> str | None:
    field = f"{FIELD}.postal_code"
    if value is not None and not _POSTAL_CODE.match(value):
        raise InvalidCommand(f"{field} must be 1 to {POSTAL_CODE_MAX} letters, digits, inner spaces or hyphens", field)
    return value


def check_address(address: ShippingAddress | None) -> ShippingAddress | None:
    """The address with its text stripped; ``InvalidCommand`` naming the first field that breaks a rule."""
    if address is None:
        return None
    if address.country not in COUNTRIES:
        field = f"{FIELD}.country"
        raise InvalidCommand(f"{field} {address.country!r} is not an assigned ISO 3166-1 alpha-2 code", field)
    return ShippingAddress(
        recipient=_text(address.recipient, f"{FIELD}.recipient", RECIPIENT_MAX),
        street_lines=_street(tuple(address.street_lines)),
        city=_text(address.city, f"{FIELD}.city", CITY_MAX),
        country=address.country,
        postal_code=_postal_code(address.postal_code),
    )


def payload(address: ShippingAddress | None) -> dict[str, Any] | None:
    """The address as ``OrderPlaced`` carries it (schema version 2), ``None`` when the order has none."""
    if address is None:
        return None
    return {
        "recipient": address.recipient,
        "street_lines": list(address.street_lines),
        "city": address.city,
        "postal_code": address.postal_code,
        "country": address.country,
    }

"""A shipping address's rules: the domain's check, and the API's 422 naming the field before anything runs."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient

from infra.http.app import _validation_error
from write import addresses, upcasting
from write import api as command_api
from write import events as e
from write.addresses import ShippingAddress
from write.errors import InvalidCommand

GOOD = {
    "recipient": "Zoë Dupré",
    "street_lines": ["12 rue des Lilas", "Bâtiment B"],
    "city": "Lyon",
    "postal_code": "69003",
    "country": "FR",
}


def test_every_event_type_is_written_at_the_version_its_upcasters_lift_to():
    assert e.schema_version(e.ORDER_PLACED) == upcasting.CURRENT[e.ORDER_PLACED] == 2
    for event_type in e.ORDER_EVENTS | e.CUSTOMER_EVENTS | e.PRODUCT_EVENTS | {e.TENANT_REGISTERED}:
        assert e.schema_version(event_type) == upcasting.CURRENT.get(event_type, e.CURRENT_SCHEMA_VERSION)


def test_the_country_list_is_iso_3166_1s_assigned_codes():
    assert len(addresses.COUNTRIES) == 249 and {"FR", "GB", "US", "JP", "SS", "BQ"} <= addresses.COUNTRIES
    assert not {"UK", "EU", "XK", "YU", "AN"} & addresses.COUNTRIES, "reserved or withdrawn codes are not assigned"


def test_a_good_address_is_kept_trimmed():
    given = ShippingAddress(" Zoë Dupré ", ("12 rue des Lilas ",), "\u3000Lyon", "FR", "69003")
    assert addresses.check_address(given) == ShippingAddress("Zoë Dupré", ("12 rue des Lilas",), "Lyon", "FR", "69003")
    assert addresses.check_address(replace(given, postal_code=None)).postal_code is None
    assert addresses.check_address(None) is None
    assert addresses.payload(addresses.check_address(given)) == {
        "recipient": "Zoë Dupré",
        "street_lines": ["12 rue des Lilas"],
        "city": "Lyon",
        "postal_code": "69003",
        "country": "FR",
    }


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"country": "fr"}, "country"),
        ({"country": "ZZ"}, "country"),
        ({"country": ""}, "country"),
        ({"recipient": "\t "}, "recipient"),
        ({"recipient": "x" * 201}, "recipient"),
        ({"recipient": "nul\x00here"}, "recipient"),
        ({"street_lines": ()}, "street_lines"),
        ({"street_lines": ("a", "b", "c", "d")}, "street_lines"),
        ({"street_lines": ("ok", "tab\there")}, "street_lines.1"),
        ({"street_lines": ("x" * 201,)}, "street_lines.0"),
        ({"city": "Ly\x85on"}, "city"),
        ({"city": "x" * 101}, "city"),
        ({"postal_code": "-6900"}, "postal_code"),
        ({"postal_code": "1" * 17}, "postal_code"),
    ],
)
def test_the_domain_refuses_a_bad_address_naming_the_field(changes, field):
    good = ShippingAddress("Zoë", ("1 Main St",), "Lyon", "FR", "69003")
    with pytest.raises(InvalidCommand) as refused:
        addresses.check_address(replace(good, **changes))
    assert refused.value.field == f"shipping_address.{field}"


class _NoBus:
    """Stands where the command bus would: a refused body must never get to it."""

    async def execute(self, *_: object) -> None:
        raise AssertionError("a refused body reached the command bus")


@pytest.fixture(scope="module")
def client() -> TestClient:
    """The command routes with the application's 422 handler; a bad body never gets as far as the bus."""
    app = FastAPI()
    app.include_router(command_api.router)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.dependency_overrides[command_api._tenant] = lambda: "t"
    app.dependency_overrides[command_api._bus] = _NoBus
    return TestClient(app)


def _order(address: object) -> dict:
    body = {"customer_id": str(uuid.uuid4()), "items": [{"product_id": str(uuid.uuid4()), "quantity": 1}]}
    return body if address is ... else body | {"shipping_address": address}


def test_the_api_takes_a_good_address_as_the_domains():
    body = command_api.OrderIn.model_validate(_order(GOOD))
    assert body.shipping_address is not None
    command = body.shipping_address.command()
    assert command == ShippingAddress("Zoë Dupré", ("12 rue des Lilas", "Bâtiment B"), "Lyon", "FR", "69003")
    assert addresses.check_address(command) == command
    assert command_api.OrderIn.model_validate(_order(...)).shipping_address is None
    assert command_api.OrderIn.model_validate(_order(None)).shipping_address is None
    no_code = {key: value for key, value in GOOD.items() if key != "postal_code"}
    assert command_api.OrderIn.model_validate(_order(no_code)).shipping_address.postal_code is None


@pytest.mark.parametrize(
    "address, field",
    [
        (GOOD | {"country": "fr"}, "country"),
        (GOOD | {"country": "ZZ"}, "country"),
        (GOOD | {"country": "FRA"}, "country"),
        ({k: v for k, v in GOOD.items() if k != "country"}, "country"),
        (GOOD | {"country": None}, "country"),
        ({k: v for k, v in GOOD.items() if k != "recipient"}, "recipient"),
        (GOOD | {"recipient": "   "}, "recipient"),
        (GOOD | {"recipient": "x" * 201}, "recipient"),
        (GOOD | {"recipient": "nul\x00here"}, "recipient"),
        (GOOD | {"recipient": "two\nlines"}, "recipient"),
        (GOOD | {"street_lines": []}, "street_lines"),
        (GOOD | {"street_lines": ["a", "b", "c", "d"]}, "street_lines"),
        (GOOD | {"street_lines": "12 rue des Lilas"}, "street_lines"),
        (GOOD | {"street_lines": ["ok", "nul\x00"]}, "street_lines.1"),
        (GOOD | {"street_lines": ["x" * 201]}, "street_lines.0"),
        (GOOD | {"city": ""}, "city"),
        (GOOD | {"city": "x" * 101}, "city"),
        (GOOD | {"city": "bell\x07"}, "city"),
        (GOOD | {"postal_code": "69 003 "}, "postal_code"),
        (GOOD | {"postal_code": "1" * 17}, "postal_code"),
        (GOOD | {"state": "Rhône"}, "state"),
        ("Lyon", None),
    ],
)
def test_a_bad_address_is_a_422_naming_its_field(client, address, field):
    response = client.post("/orders", json=_order(address))
    answer = response.json()
    where = "shipping_address" if field is None else f"shipping_address.{field}"
    assert (response.status_code, answer["code"], answer["field"]) == (422, "invalid", where), answer
    assert answer["message"].startswith(f"{where}: ")


def test_the_api_documents_the_address_with_an_example():
    schema = command_api.OrderIn.model_json_schema()
    address = schema["$defs"]["ShippingAddressIn"]
    assert address["examples"] == [GOOD] and address["required"] == ["recipient", "street_lines", "city", "country"]
    assert address["properties"]["country"]["enum"] == sorted(addresses.COUNTRIES)
    assert address["properties"]["recipient"]["maxLength"] == addresses.RECIPIENT_MAX

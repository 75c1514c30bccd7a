"""Every kind of bad input: its 4xx, a message that says what is wrong, and nothing written."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import text

from tests.e2e.conftest import headers_of
from tests.e2e.test_read_your_writes import open_shop


async def written(engine, tenant: str) -> tuple[int, ...]:
    async with engine.connect() as conn:
        return tuple(
            [
                (await conn.execute(text(f"SELECT count(*) FROM {t} WHERE tenant_id = :t"), {"t": tenant})).scalar()
                for t in ("customers", "products", "orders", "events", "idempotency_keys")
            ]
        )


def cases(made: dict) -> list[tuple[str, str, dict, dict, int, str, str | None]]:
    """(method path, body, extra headers, status, code, field)."""
    cid, pid, oid = made["customer"]["id"], made["product"]["id"], made["order"]["id"]
    line = {"product_id": pid, "quantity": 1}
    return [
        ("/orders", {"customer_id": cid, "items": []}, {}, 422, "invalid", "items"),
        ("/orders", {"customer_id": cid, "items": [line | {"quantity": 0}]}, {}, 422, "invalid", "items.0.quantity"),
        (
            "/orders",
            {"customer_id": cid, "items": [line | {"quantity": "two"}]},
            {},
            422,
            "invalid",
            "items.0.quantity",
        ),
        ("/orders", {"customer_id": "not-a-uuid", "items": [line]}, {}, 422, "invalid", "customer_id"),
        ("/orders", {"customer_id": cid, "items": [line], "colour": "red"}, {}, 422, "invalid", "colour"),
        ("/orders", {"customer_id": str(uuid.uuid4()), "items": [line]}, {}, 404, "not_found", "customer_id"),
        (
            "/orders",
            {"customer_id": cid, "items": [{"product_id": str(uuid.uuid4()), "quantity": 1}]},
            {},
            404,
            "not_found",
            "items",
        ),
        ("/orders", {"customer_id": cid, "items": [line]}, {"Authorization": None}, 401, "unauthenticated", None),
        (
            "/orders",
            {"customer_id": cid, "items": [line]},
            {"Authorization": "Bearer prk_0_x"},
            401,
            "unauthenticated",
            None,
        ),
        ("/orders", {"customer_id": cid, "items": [line]}, {"X-Tenant-ID": "nobody-here"}, 403, "forbidden", None),
        (f"/orders/{oid}/ship", {"expected_version": 1}, {}, 409, "illegal_transition", None),
        (f"/orders/{oid}/confirm", {"expected_version": 9}, {}, 409, "version_conflict", "expected_version"),
        (f"/orders/{oid}/confirm", {}, {}, 422, "invalid", "expected_version"),
        (
            f"/orders/{oid}/discount",
            {"percent": "150", "authorised_by": "Dana", "expected_version": 1},
            {},
            422,
            "invalid",
            "percent",
        ),
        (f"/orders/{uuid.uuid4()}/cancel", {"expected_version": 1}, {}, 404, "not_found", "order_id"),
        ("/customers", {"name": "Copy", "email": "zoe@dupre.example"}, {}, 409, "duplicate", "email"),
        ("/customers", {"name": "No mail", "email": "nope"}, {}, 422, "invalid", "email"),
        ("/products", {"name": "Free lunch", "price": "0"}, {}, 422, "invalid", "price"),
        ("/products", {"name": "Float", "price": "1.234"}, {}, 422, "invalid", "price"),
        (
            f"/products/{pid}/price",
            {"price": "3.00", "expected_version": 5},
            {},
            409,
            "version_conflict",
            "expected_version",
        ),
        (
            "/orders",
            {"customer_id": cid, "items": [line, line | {"quantity": 2}]},
            {"Idempotency-Key": "once"},
            409,
            "idempotency_mismatch",
            "Idempotency-Key",
        ),
        ("/orders", {"customer_id": cid, "items": [line] * 101}, {}, 422, "invalid", "items"),
        (
            "/orders",
            {"customer_id": cid, "items": [{"product_id": made["dear"]["id"], "quantity": 2}]},
            {},
            422,
            "invalid",
            "items",
        ),
        ("/orders", {"customer_id": cid, "items": [line], "note": "nul\u0000here"}, {}, 422, "invalid", "note"),
        ("/products", {"name": "Huge", "price": "1e30"}, {}, 422, "invalid", "price"),
        ("/products", {"name": "Huge", "price": "NaN"}, {}, 422, "invalid", "price"),
        ("/customers", {"name": "bad \ud800 text", "email": "s@x.io"}, {}, 422, "invalid", "name"),
        *(
            ("/orders", {"customer_id": cid, "items": [line], "shipping_address": address}, {}, 422, "invalid", field)
            for address, field in bad_addresses()
        ),
    ]


def bad_addresses() -> list[tuple[dict, str]]:
    """A malformed shipping address: (the address, the field its 422 names)."""
    good = {"recipient": "Zoë Dupré", "street_lines": ["12 rue des Lilas"], "city": "Lyon", "country": "FR"}
    return [
        (good | {"country": "fr"}, "shipping_address.country"),
        ({key: value for key, value in good.items() if key != "country"}, "shipping_address.country"),
        (good | {"country": "ZZ"}, "shipping_address.country"),
        (good | {"recipient": "x" * 201}, "shipping_address.recipient"),
        (good | {"street_lines": ["ok", "nul\u0000here"]}, "shipping_address.street_lines.1"),
        (good | {"street_lines": ["a", "b", "c", "d"]}, "shipping_address.street_lines"),
        (good | {"city": "two\nlines"}, "shipping_address.city"),
        (good | {"postal_code": "69_003"}, "shipping_address.postal_code"),
    ]


async def test_bad_input_gets_its_4xx_and_writes_nothing(http, api_tenant, write_engine):
    shop, made = await open_shop(http, api_tenant)
    made["dear"] = await shop.post("/products", {"name": "Dear", "price": "9999999999.99"}, 201)
    first = await http.post(
        "/orders",
        json={"customer_id": made["customer"]["id"], "items": [{"product_id": made["product"]["id"], "quantity": 1}]},
        headers=shop.headers | {"Idempotency-Key": "once"},
    )
    assert first.status_code == 201
    before = await written(write_engine, api_tenant)
    failures = []
    for path, body, extra, status, code, field in cases(made):
        headers = {k: v for k, v in (shop.headers | extra).items() if v is not None}
        # json.dumps escapes a lone surrogate as \ud800, which is what a client would send.
        response = await http.post(
            path, content=json.dumps(body), headers=headers | {"content-type": "application/json"}
        )
        answer = response.json()
        got = (response.status_code, answer.get("code"), answer.get("field"))
        if got != (status, code, field) or not answer.get("message"):
            failures.append((path, body, got, answer))
    assert not failures, failures
    assert await written(write_engine, api_tenant) == before


async def test_the_same_idempotency_key_returns_the_first_answer(http, api_tenant, write_engine):
    shop, made = await open_shop(http, api_tenant)
    body = {"customer_id": made["customer"]["id"], "items": [{"product_id": made["product"]["id"], "quantity": 1}]}
    headers = shop.headers | {"Idempotency-Key": "retry-me"}
    first = await http.post("/orders", json=body, headers=headers)
    before = await written(write_engine, api_tenant)
    second = await http.post("/orders", json=body, headers=headers)
    assert first.status_code == 201 and second.status_code == 201
    assert second.json() == first.json()
    assert await written(write_engine, api_tenant) == before


@pytest.mark.parametrize(
    "path, params, field",
    [
        ("/analytics/revenue", {"to": "0001-01-05"}, "to"),
        ("/search", {"min_total": "1e999999"}, "min_total"),
        ("/search", {"status": "lost"}, "status"),
        ("/orders/not-a-uuid", {}, "order_id"),
    ],
)
async def test_bad_reader_queries_get_a_422_naming_the_parameter(http, api_tenant, path, params, field):
    response = await http.get(path, params=params, headers=headers_of(api_tenant))
    assert (response.status_code, response.json()["field"]) == (422, field), response.text


@pytest.mark.parametrize(
    "path, empty",
    [
        ("/analytics/revenue", {"rows": []}),
        ("/analytics/summary", {"orders": 0, "cancelled": 0, "discounted_orders": 0}),
        ("/analytics/orders-by-hour", {"rows": []}),
        ("/search", {"total": 0, "hits": []}),
    ],
)
@pytest.mark.parametrize("start, end", [("2026-02-01", "2026-01-01"), ("2026-01-01", "2026-01-01")])
async def test_a_range_with_from_not_before_to_is_empty_not_an_error(http, api_tenant, path, empty, start, end):
    """An empty range is a valid question: its answer has nothing in it."""
    response = await http.get(path, params={"from": start, "to": end}, headers=headers_of(api_tenant))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert {key: answer[key] for key in empty} == empty, answer
    assert Decimal(answer.get("revenue", "0")) == 0, answer


@pytest.mark.parametrize("path", ["/orders/{oid}", "/customers/{cid}/dashboard"])
async def test_readers_answer_a_clear_404_for_unknown_ids(http, api_tenant, path):
    unknown = uuid.uuid4()
    response = await http.get(path.format(oid=unknown, cid=unknown), headers=headers_of(api_tenant))
    assert response.status_code == 404
    assert response.json()["code"] == "not_found" and str(unknown) in response.json()["message"]

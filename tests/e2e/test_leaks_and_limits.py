"""What one tenant must not learn of another's data, and the caps that keep any input a clear 4xx, never a 500."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from tests.conftest import OPERATOR
from tests.e2e.conftest import headers_of, open_tenant
from tests.e2e.test_read_your_writes import open_shop
from write import event_log

MiB = 1024 * 1024


def cursor_of(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def decoded(cursor: str) -> object:
    return json.loads(base64.urlsafe_b64decode(cursor))


async def log_head(write_engine) -> int:
    async with write_engine.connect() as conn:
        return await event_log.head(conn)


# --- search answers an order, never a score -----------------------------------------------------------------


@pytest.fixture
async def widgets(http, api_tenant):
    """25 orders matching "widget": five say it in their note too, so they score above the rest."""
    shop, made = await open_shop(http, api_tenant)
    widget = await shop.post("/products", {"name": "Widget", "price": "3.00"}, 201)
    orders = []
    for n in range(25):
        note = "widget widget, the widget kind" if n % 5 == 0 else None
        orders.append(
            await shop.post(
                "/orders",
                {
                    "customer_id": made["customer"]["id"],
                    "note": note,
                    "items": [{"product_id": widget["id"], "quantity": 1}],
                },
                201,
            )
        )
    return shop, orders


async def test_search_hits_carry_no_score_and_keep_relevance_order(widgets, http):
    shop, orders = widgets
    found, _ = await shop.get("/search", orders[-1]["position"], q="widget")
    assert found["total"] == 25 and all("score" not in hit for hit in found["hits"])
    noted = {order["id"] for n, order in enumerate(orders) if n % 5 == 0}
    assert {hit["order_id"] for hit in found["hits"][:5]} == noted  # the better matches still come first
    spec = (await http.get("/openapi.json")).json()
    assert "score" not in spec["components"]["schemas"]["Hit"]["properties"]
    assert "score" not in spec["components"]["schemas"]["SearchResults"]["examples"][0]["hits"][0]


async def test_a_relevance_cursor_carries_no_score_and_pages_like_page_numbers(widgets):
    shop, orders = widgets
    position = orders[-1]["position"]
    first, _ = await shop.get("/search", position, q="widget")
    assert not any(isinstance(value, float) for value in decoded(first["next_cursor"]))  # scores are floats
    by_cursor, _ = await shop.get("/search", position, q="widget", cursor=first["next_cursor"])
    by_page, _ = await shop.get("/search", position, q="widget", page=2)
    assert [h["order_id"] for h in by_cursor["hits"]] == [h["order_id"] for h in by_page["hits"]]
    assert len(by_cursor["hits"]) == 5 and by_cursor["next_cursor"] is None


# --- a customer's order pages say nothing of other tenants' orders ------------------------------------------


async def test_another_tenants_order_as_cursor_answers_like_a_random_id(http, api_tenant):
    shop, mine = await open_shop(http, api_tenant)
    await open_tenant(http, f"{api_tenant}-b", "Other")
    theirs_shop, theirs = await open_shop(http, f"{api_tenant}-b")
    # Their order is projected, so a difference could only come from whose order it is.
    await theirs_shop.get(f"/customers/{theirs['customer']['id']}/orders", theirs["order"]["position"])
    for customer in (theirs["customer"]["id"], mine["customer"]["id"]):  # their customer, then one of mine
        answers = []
        for cursor in (theirs["order"]["id"], str(uuid.uuid4())):
            response = await http.get(f"/customers/{customer}/orders", params={"cursor": cursor}, headers=shop.headers)
            answers.append((response.status_code, response.json()))
        assert answers[0] == answers[1], answers
        assert answers[0][0] == 422 and answers[0][1]["field"] == "cursor"
    mine_next = await http.get(
        f"/customers/{mine['customer']['id']}/orders", headers=shop.headers, params={"cursor": mine["order"]["id"]}
    )
    assert mine_next.status_code == 200 and mine_next.json()["orders"] == []  # my own cursor still pages


# --- malformed cursors and other reader values are 4xx ------------------------------------------------------

UUID = "0b6f8f3e-4a58-4f0e-9a0e-2b1f9b7d2c11"
BAD_CURSORS = [
    cursor_of([]),
    cursor_of([1]),
    cursor_of({}),
    cursor_of("x"),
    cursor_of([None, None]),
    cursor_of(None),
    cursor_of([[1]]),
    cursor_of([{"a": 1}, 1, UUID]),
    cursor_of(["nosuchsort", 1, UUID]),
    cursor_of(["newest", "x", UUID]),
    cursor_of(["newest", 1.5, UUID]),
    cursor_of(["newest", 10**30, UUID]),
    cursor_of(["newest", True, UUID]),
    cursor_of(["newest", 1, "not-an-order-id"]),
    cursor_of(["newest", 1]),
    cursor_of(["newest", 1, UUID, 3]),
    cursor_of(["total_desc", 1e308, UUID]),
    cursor_of(["total_desc", "1", UUID]),
    cursor_of(["newest"] + [1] * 60),
    cursor_of([[[[[[[[]]]]]]]]),
    "!!!",
    "a",
    "AAAA",
    "__4=",
    base64.urlsafe_b64encode(b"\xff\xfe[1]").decode(),
    "W" * 501,
    cursor_of(list(range(200))),
]


async def test_every_malformed_search_cursor_is_a_422_naming_the_cursor(http, api_tenant):
    failures = []
    for cursor in BAD_CURSORS:
        response = await http.get("/search", params={"cursor": cursor}, headers=headers_of(api_tenant))
        body = response.json()
        if (response.status_code, body.get("code"), body.get("field")) != (422, "invalid", "cursor") or not body.get(
            "message"
        ):
            failures.append((cursor, response.status_code, body))
    assert not failures, failures


async def test_a_cursor_of_another_sort_or_an_unknown_order_says_so(widgets, http):
    shop, orders = widgets
    position = orders[-1]["position"]
    newest, _ = await shop.get("/search", position)
    response = await http.get(
        "/search", params={"cursor": newest["next_cursor"], "sort": "total_desc"}, headers=shop.headers
    )
    assert response.status_code == 422 and "sort" in response.json()["message"], response.text
    answers = []
    for order_id in (str(uuid.uuid4()), orders[0]["id"]):  # unknown, then one that does not match "gizmo"
        response = await http.get(
            "/search", params={"q": "gizmo", "cursor": cursor_of(["relevance", 1, order_id])}, headers=shop.headers
        )
        answers.append((response.status_code, response.json()))
    assert answers[0] == answers[1] and answers[0][0] == 422 and answers[0][1]["field"] == "cursor", answers


@pytest.mark.parametrize(
    "params, field",
    [
        ({"min_total": "5", "max_total": "1"}, "min_total"),
        ({"page": 501}, "page"),
        ({"page": 10**30}, "page"),
        ({"page": 0}, "page"),
        ({"page": 2, "cursor": cursor_of(["newest", 1, UUID])}, "cursor"),
        ({"histogram_interval": 0}, "histogram_interval"),
        ({"histogram_interval": 10**12}, "histogram_interval"),
        ({"from": "not-a-date"}, "from"),
        ({"sort": "score"}, "sort"),
        ({"min_total": "NaN"}, "min_total"),
        ({"max_total": "-1"}, "max_total"),
        ({"q": "x" * 201}, "q"),
        ({"customer_id": "nope"}, "customer_id"),
        ({"min_position": "-1"}, "min_position"),
    ],
)
async def test_bad_search_parameters_get_a_422_naming_them(http, api_tenant, params, field):
    response = await http.get("/search", params=params, headers=headers_of(api_tenant))
    assert (response.status_code, response.json()["field"]) == (422, field), response.text


# --- every text and list of a command has a cap ------------------------------------------------------------


def over_long(made: dict) -> list[tuple[str, dict, str]]:
    """(path, body, the field named) for a value one past its cap, and a few far past it."""
    cid, pid, oid = made["customer"]["id"], made["product"]["id"], made["order"]["id"]
    line = {"product_id": pid, "quantity": 1}
    return [
        ("/customers", {"name": "n" * 201, "email": "a@b.io"}, "name"),
        ("/customers", {"name": "Ann", "email": "a" * 243 + "@example.com"}, "email"),
        (f"/customers/{cid}/email", {"email": "a" * 243 + "@example.com", "expected_version": 1}, "email"),
        (f"/customers/{cid}/name", {"name": "n" * 201, "expected_version": 1}, "name"),
        ("/products", {"name": "n" * 201, "price": "1.00"}, "name"),
        ("/products", {"name": "Sku", "price": "1.00", "sku": "s" * 65}, "sku"),
        ("/products", {"name": "Sku", "price": "1.00", "sku": "s" * 900_000}, "sku"),
        (f"/products/{pid}/name", {"name": "n" * 201, "expected_version": 1}, "name"),
        ("/orders", {"customer_id": cid, "items": [line], "note": "n" * 1001}, "note"),
        ("/orders", {"customer_id": cid, "items": [line] * 101}, "items"),
        ("/orders", {"customer_id": cid, "items": [line | {"quantity": 10_001}]}, "items.0.quantity"),
        (f"/orders/{oid}/cancel", {"reason": "r" * 501, "expected_version": 1}, "reason"),
        (
            f"/orders/{oid}/discount",
            {"percent": "5", "authorised_by": "a" * 201, "expected_version": 1},
            "authorised_by",
        ),
    ]


async def test_over_long_command_fields_get_a_422_naming_them_and_write_nothing(http, api_tenant, write_engine):
    shop, made = await open_shop(http, api_tenant)
    before = await log_head(write_engine)
    failures = []
    for path, body, field in over_long(made):
        response = await http.post(path, json=body, headers=shop.headers)
        answer = response.json()
        if (response.status_code, answer.get("field")) != (422, field) or field not in answer.get("message", ""):
            failures.append((path, field, response.status_code, str(answer)[:200]))
    tenant = await http.post("/tenants", json={"id": f"{api_tenant}-long", "name": "n" * 201}, headers=OPERATOR)
    if (tenant.status_code, tenant.json().get("field")) != (422, "name"):
        failures.append(("/tenants", "name", tenant.status_code, tenant.text[:200]))
    assert not failures, failures
    assert await log_head(write_engine) == before


async def test_openapi_documents_a_cap_on_every_command_text_and_list(http):
    spec = (await http.get("/openapi.json")).json()
    schemas, uncapped = spec["components"]["schemas"], []
    for path, operations in spec["paths"].items():
        body = operations.get("post", {}).get("requestBody")
        if body is None or not {"commands", "tenants"} & set(operations["post"]["tags"]):
            continue
        name = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        uncapped += [f"{path} {field}" for field in _uncapped(schemas, name)]
    assert not uncapped, uncapped


def _uncapped(schemas: dict, name: str) -> list[str]:
    """The text fields without maxLength and lists without maxItems of one body, nested ones too (ids, patterns
    and decimals, a number or its string, have a shape of their own)."""
    found = []
    for field, schema in schemas[name]["properties"].items():
        kinds = schema.get("anyOf", [schema])
        if {"number", "string"} <= {kind.get("type") for kind in kinds}:
            continue
        for kind in kinds:
            if (
                kind.get("type") == "string"
                and not {"maxLength", "pattern", "enum"} & set(kind)
                and kind.get("format") != "uuid"
            ):
                found.append(field)
            if kind.get("type") == "array":
                if "maxItems" not in kind:
                    found.append(field)
                if "$ref" in kind.get("items", {}):
                    found += [f"{field}.{inner}" for inner in _uncapped(schemas, kind["items"]["$ref"].rsplit("/")[-1])]
    return found


# --- request bodies past the limit are a 413 ---------------------------------------------------------------


def too_large(response) -> bool:
    body = response.json()
    return (
        response.status_code == 413
        and body["code"] == "too_large"
        and body["field"] is None
        and body["status"] == 413
        and "limit" in body["message"]
    )


async def test_a_declared_body_past_the_limit_is_a_413_and_writes_nothing(http, api_tenant, write_engine):
    shop, _made = await open_shop(http, api_tenant)
    before = await log_head(write_engine)
    huge = json.dumps({"name": "Big", "price": "1.00", "sku": "s" * (2 * MiB)})
    response = await http.post("/products", content=huge, headers=shop.headers | {"content-type": "application/json"})
    assert too_large(response), response.text
    assert await log_head(write_engine) == before


async def test_a_chunked_body_is_cut_off_at_the_limit(http, api_tenant, write_engine):
    shop, _made = await open_shop(http, api_tenant)
    before = await log_head(write_engine)

    async def chunks(total: int):
        yield b'{"name": "Big", "price": "1.00", "sku": "'
        for _ in range(total // 65536):
            yield b"s" * 65536
        yield b'"}'

    headers = shop.headers | {"content-type": "application/json"}
    response = await http.post("/products", content=chunks(4 * MiB), headers=headers)
    assert "content-length" not in response.request.headers  # it went chunked, with no length to check up front
    assert too_large(response), response.text
    assert await log_head(write_engine) == before
    small = await http.post("/products", content=_one_chunk(b'{"name": "Small", "price": "1.00"}'), headers=headers)
    assert small.status_code == 201, small.text  # a chunked body under the limit still goes through


async def _one_chunk(data: bytes):
    yield data

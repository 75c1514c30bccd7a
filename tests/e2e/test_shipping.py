"""The shipping dashboard over HTTP: the queue of orders waiting to ship (by country, age, page) and the summary,
each tenant seeing its own orders only, at the position its commands answered."""

from __future__ import annotations

import pytest

from tests.conftest import OPERATOR
from tests.e2e.conftest import open_tenant
from tests.e2e.test_read_your_writes import Shop


def address(country: str, city: str) -> dict:
    return {"recipient": "Ana Souza", "street_lines": ["Rua Augusta 1500"], "city": city, "country": country}


#: The first tenant's orders: (address or None, what happens to it after it is placed, quantity).
ORDERS = [
    (address("FR", "Lyon"), "confirm", 1),
    (address("JP", "Tokyo"), "confirm", 2),
    (None, "confirm", 3),
    (address("FR", "Paris"), "confirm", 4),
    (address("FR", "Lyon"), "ship", 1),
    (None, "ship", 2),
    (address("JP", "Osaka"), "cancel", 1),
    (address("BR", "São Paulo"), None, 5),  # pending
    (address("FR", "Nice"), "cancel after confirm", 1),
]


async def place(shop: Shop, made: dict, shipping: dict | None, quantity: int) -> dict:
    body = {"customer_id": made["customer"], "items": [{"product_id": made["product"], "quantity": quantity}]}
    return await shop.post("/orders", body | ({"shipping_address": shipping} if shipping else {}), 201)


async def advance(shop: Shop, order: dict, what: str | None) -> int:
    """The order taken through its story; the position of its last command."""
    oid, position = order["id"], order["position"]
    steps = {
        None: [],
        "confirm": [("confirm", {})],
        "ship": [("confirm", {}), ("ship", {})],
        "cancel": [("cancel", {"reason": "changed mind"})],
        "cancel after confirm": [("confirm", {}), ("cancel", {"reason": "out of stock"})],
    }[what]
    for version, (action, body) in enumerate(steps, start=1):
        position = (await shop.post(f"/orders/{oid}/{action}", body | {"expected_version": version}))["position"]
    return position


@pytest.fixture
async def shipping(http, tenant_id):
    """A tenant with the orders of ``ORDERS``, confirmed in that order; its shop, the order ids, the last position."""
    await open_tenant(http, tenant_id)
    shop = Shop(http, tenant_id)
    customer = await shop.post("/customers", {"name": "Zoë Dupré", "email": "zoe@dupre.example"}, 201)
    product = await shop.post("/products", {"name": "Crate", "price": "3.00"}, 201)
    made = {"customer": customer["id"], "product": product["id"]}
    ids, last = [], 0
    for shipping_address, what, quantity in ORDERS:
        order = await place(shop, made, shipping_address, quantity)
        ids.append(order["id"])
        last = max(last, await advance(shop, order, what))
    return shop, ids, last, made


async def test_the_queue_holds_the_waiting_orders_oldest_confirmation_first(shipping):
    shop, ids, last, _ = shipping
    queue, served = await shop.get("/shipping/queue", last)
    assert served >= last and queue["consistency"]["position"] == served
    assert [o["order_id"] for o in queue["orders"]] == ids[:4], "confirmed, neither shipped nor cancelled"
    assert [(o["country"], o["city"], o["item_count"]) for o in queue["orders"]] == [
        ("FR", "Lyon", 1),
        ("JP", "Tokyo", 2),
        (None, None, 3),
        ("FR", "Paris", 4),
    ]
    assert queue["next_cursor"] is None
    assert all(0 <= o["age_hours"] < 1 for o in queue["orders"])
    confirmed = [o["confirmed_at"] for o in queue["orders"]]
    assert confirmed == sorted(confirmed)


async def test_the_queue_filters_by_country_unknown_included_and_by_age(shipping):
    shop, ids, last, _ = shipping
    france, _ = await shop.get("/shipping/queue", last, country="FR")
    assert [o["order_id"] for o in france["orders"]] == [ids[0], ids[3]]
    unknown, _ = await shop.get("/shipping/queue", last, country="unknown")
    assert [o["order_id"] for o in unknown["orders"]] == [ids[2]]
    nowhere, _ = await shop.get("/shipping/queue", last, country="BR")
    assert nowhere["orders"] == [], "the Brazilian order is still pending"
    old, _ = await shop.get("/shipping/queue", last, older_than_hours=0)
    assert len(old["orders"]) == 4
    older, _ = await shop.get("/shipping/queue", last, older_than_hours=1)
    assert older["orders"] == [], "every order was confirmed moments ago"


async def test_paging_by_cursor_reaches_every_waiting_order_once(shipping):
    shop, ids, last, made = shipping
    more = [await place(shop, made, address("DE", "Berlin"), 1) for _ in range(3)]
    for order in more:
        last = max(last, await advance(shop, order, "confirm"))
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page, _ = await shop.get("/shipping/queue", last, **params)
        seen += [o["order_id"] for o in page["orders"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[:4] + [o["id"] for o in more]
    assert pages == 4


async def test_the_summary_counts_per_country_waiting_oldest_and_shipped_today(shipping):
    shop, _, last, _ = shipping
    summary, served = await shop.get("/shipping/summary", last)
    rows = {c["country"]: (c["waiting"], c["shipped_today"]) for c in summary["countries"]}
    assert rows == {"FR": (2, 1), "JP": (1, 0), None: (1, 1)}
    assert summary["countries"][-1]["country"] is None, "the unknown country comes last"
    assert (summary["totals"]["waiting"], summary["totals"]["shipped_today"]) == (4, 2)
    oldest = [c["oldest_waiting_hours"] for c in summary["countries"]]
    assert all(h is not None and 0 <= h < 1 for h in oldest)
    assert summary["totals"]["oldest_waiting_hours"] == max(oldest)
    assert summary["consistency"] == {"position": served, "stale": False, "min_position": last}


async def test_a_command_is_read_at_the_position_it_answered(shipping):
    shop, ids, _, _ = shipping
    shipped = await shop.post(f"/orders/{ids[0]}/ship", {"expected_version": 2})
    queue, served = await shop.get("/shipping/queue", shipped["position"])
    assert served >= shipped["position"]
    assert [o["order_id"] for o in queue["orders"]] == ids[1:4]
    summary, _ = await shop.get("/shipping/summary", shipped["position"])
    france = next(c for c in summary["countries"] if c["country"] == "FR")
    assert (france["waiting"], france["shipped_today"]) == (1, 2)


async def test_another_tenant_sees_nothing_of_the_first(http, shipping, tenant_id):
    _, _, last, _ = shipping
    await open_tenant(http, f"{tenant_id}-other")
    other = Shop(http, f"{tenant_id}-other")
    queue, _ = await other.get("/shipping/queue", last)
    assert queue["orders"] == [] and queue["next_cursor"] is None
    summary, _ = await other.get("/shipping/summary", last)
    assert summary["countries"] == []
    assert summary["totals"] == {"waiting": 0, "oldest_waiting_hours": None, "shipped_today": 0}


async def test_no_credential_is_a_401_and_a_bad_cursor_or_country_a_422(http, shipping):
    shop, *_ = shipping
    for path in ("/shipping/queue", "/shipping/summary"):
        assert (await http.get(path)).status_code == 401
        assert (await http.get(path, headers=OPERATOR)).status_code in (401, 403), "an operator reads no tenant"
    for params, field in (
        ({"cursor": "1785669300123456.5b0f6c1e"}, "cursor"),  # not the documented form
        ({"cursor": "not a cursor"}, "cursor"),
        ({"country": "fr"}, "country"),
        ({"older_than_hours": -1}, "older_than_hours"),
    ):
        response = await http.get("/shipping/queue", params=params, headers=shop.headers)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["field"] == field

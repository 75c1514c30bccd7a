"""A customer's orders from Redis: newest first, cursor pages that hold still while orders are placed."""

from __future__ import annotations

from tests.e2e.conftest import open_tenant
from tests.e2e.test_read_your_writes import open_shop


async def test_customer_orders_page_newest_first_with_a_stable_cursor(http, api_tenant):
    shop, made = await open_shop(http, api_tenant)
    customer, product = made["customer"]["id"], made["product"]["id"]
    placed = [made["order"]]
    for _ in range(4):
        placed.append(
            await shop.post(
                "/orders", {"customer_id": customer, "items": [{"product_id": product, "quantity": 1}]}, 201
            )
        )
    newest_first = [o["id"] for o in reversed(placed)]
    path = f"/customers/{customer}/orders"

    first, position = await shop.get(path, placed[-1]["position"], limit=2)
    assert [o["order_id"] for o in first["orders"]] == newest_first[:2] and position >= placed[-1]["position"]
    late = await shop.post(
        "/orders", {"customer_id": customer, "items": [{"product_id": product, "quantity": 3}]}, 201
    )  # a new order on top must not shift the next page
    second, _ = await shop.get(path, late["position"], limit=2, cursor=first["next_cursor"])
    assert [o["order_id"] for o in second["orders"]] == newest_first[2:4]
    third, _ = await shop.get(path, late["position"], limit=2, cursor=second["next_cursor"])
    assert [o["order_id"] for o in third["orders"]] == newest_first[4:] and third["next_cursor"] is None
    fresh, _ = await shop.get(path, late["position"], limit=1)
    assert fresh["orders"][0]["order_id"] == late["id"] and fresh["orders"][0]["items"][0]["quantity"] == 3


async def test_another_tenant_sees_none_of_the_customers_orders(http, api_tenant):
    shop, made = await open_shop(http, api_tenant)
    other = f"{api_tenant}-x"
    theirs = await open_tenant(http, other, "Other")
    await shop.get(f"/orders/{made['order']['id']}", made["order"]["position"])
    response = await http.get(f"/customers/{made['customer']['id']}/orders", headers=theirs)
    assert response.status_code == 200 and response.json()["orders"] == []
    assert response.json()["next_cursor"] is None


async def test_an_unknown_cursor_is_a_clear_422(http, api_tenant):
    shop, made = await open_shop(http, api_tenant)
    response = await http.get(
        f"/customers/{made['customer']['id']}/orders",
        headers=shop.headers,
        params={"cursor": made["customer"]["id"], "min_position": made["order"]["position"]},
    )
    assert response.status_code == 422 and response.json()["field"] == "cursor"
    assert "is not an order of this customer" in response.json()["message"]

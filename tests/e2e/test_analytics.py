"""Analytics endpoints on ClickHouse: figures an analyst can check by hand, and only the caller's tenant's."""

from __future__ import annotations

from tests.e2e.conftest import open_tenant
from tests.e2e.test_read_your_writes import open_shop


async def test_summary_and_hours_reflect_cancellations_and_discounts(http, api_tenant):
    shop, made = await open_shop(http, api_tenant)  # one pending order of 25.00
    customer, product = made["customer"]["id"], made["product"]["id"]
    discounted = await shop.post(
        "/orders", {"customer_id": customer, "items": [{"product_id": product, "quantity": 8}]}, 201
    )  # 100.00
    await shop.post(
        f"/orders/{discounted['id']}/discount", {"percent": "10", "authorised_by": "Ann", "expected_version": 1}
    )
    cancelled = await shop.post(
        "/orders", {"customer_id": customer, "items": [{"product_id": product, "quantity": 1}]}, 201
    )
    last = await shop.post(f"/orders/{cancelled['id']}/cancel", {"reason": "changed mind", "expected_version": 1})

    figures, _ = await shop.get("/analytics/summary", last["position"])
    assert (figures["orders"], figures["cancelled"], figures["revenue"], figures["average_order_value"]) == (
        3,
        1,
        "115.00",
        "57.50",
    )
    assert (figures["discounted_orders"], figures["discount_total"]) == (1, "10.00")
    assert figures["cancellation_rate"] == round(1 / 3, 4) and figures["discount_share_of_subtotal"] == 0.08
    hours, _ = await shop.get("/analytics/orders-by-hour", last["position"])
    assert sum(r["orders"] for r in hours["rows"]) == 2 and all(0 <= r["hour"] <= 23 for r in hours["rows"])
    weekly, _ = await shop.get("/analytics/revenue", last["position"], granularity="week")
    assert [(r["orders"], r["revenue"]) for r in weekly["rows"]] == [(2, "115.00")]
    by_quantity, _ = await shop.get("/analytics/top-products", last["position"], by="quantity")
    assert [(r["name"], r["quantity"]) for r in by_quantity["rows"]] == [("Gizmo Deluxe", 10)]


async def test_no_analytics_answer_contains_another_tenants_orders(http, api_tenant):
    shop, made = await open_shop(http, api_tenant)
    other = f"{api_tenant}-y"
    theirs = await open_tenant(http, other, "Other")
    position = made["order"]["position"]
    for path in ("/analytics/summary", "/analytics/revenue", "/analytics/top-products", "/analytics/orders-by-hour"):
        await shop.get(path, position)  # the order is there for its own tenant
        response = await http.get(path, headers=theirs, params={"min_position": position})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body.get("rows", []) == [] and body.get("orders", 0) == 0, (path, body)
        assert made["product"]["id"] not in response.text

"""Customer dashboards on Postgres: monthly spend, top products with today's names, the last order, top customers."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.e2e.conftest import open_tenant
from tests.e2e.test_read_your_writes import Shop


async def test_a_dashboard_shows_spend_by_month_top_products_and_the_last_order(http, api_tenant):
    shop = Shop(http, api_tenant)
    ann = await shop.post("/customers", {"name": "Ann Lee", "email": "ann@lee.example"}, 201)
    bob = await shop.post("/customers", {"name": "Bob Ray", "email": "bob@ray.example"}, 201)
    lamp = await shop.post("/products", {"name": "Lamp", "price": "30.00"}, 201)
    mug = await shop.post("/products", {"name": "Mug", "price": "4.00"}, 201)
    await shop.post(
        "/orders",
        {
            "customer_id": ann["id"],
            "items": [{"product_id": lamp["id"], "quantity": 2}, {"product_id": mug["id"], "quantity": 1}],
        },
        201,
    )
    gone = await shop.post(
        "/orders", {"customer_id": ann["id"], "items": [{"product_id": lamp["id"], "quantity": 9}]}, 201
    )
    await shop.post(f"/orders/{gone['id']}/cancel", {"reason": "duplicate", "expected_version": 1})
    last = await shop.post(
        "/orders", {"customer_id": ann["id"], "items": [{"product_id": mug["id"], "quantity": 5}]}, 201
    )
    await shop.post("/orders", {"customer_id": bob["id"], "items": [{"product_id": mug["id"], "quantity": 1}]}, 201)
    renamed = await shop.post(f"/products/{lamp['id']}/name", {"name": "Desk Lamp", "expected_version": 1})

    board, _ = await shop.get(f"/customers/{ann['id']}/dashboard", renamed["position"])
    assert (board["lifetime_value"], board["orders"]["total"], board["orders"]["cancelled"]) == ("84.00", 3, 1)
    this_month = datetime.now(UTC).strftime("%Y-%m")
    assert len(board["spend_by_month"]) == 12 and board["spend_by_month"][-1] == {
        "month": this_month,
        "orders": 2,
        "spend": "84.00",
    }
    assert all(m["spend"] == "0" for m in board["spend_by_month"][:-1])
    assert [(p["name"], p["quantity"], p["revenue"]) for p in board["top_products"]] == [
        ("Desk Lamp", 2, "60.00"),
        ("Mug", 6, "24.00"),
    ]
    assert board["last_order"]["order_id"] == last["id"] and board["last_order"]["total"] == "20.00"

    by_value, _ = await shop.get("/dashboards/top-customers", renamed["position"])
    assert [(c["name"], c["lifetime_value"]) for c in by_value["customers"]] == [
        ("Ann Lee", "84.00"),
        ("Bob Ray", "4.00"),
    ]
    by_orders, _ = await shop.get("/dashboards/top-customers", renamed["position"], by="orders", limit=1)
    assert [(c["name"], c["orders"]) for c in by_orders["customers"]] == [("Ann Lee", 3)]

    other = await open_tenant(http, f"{api_tenant}-w", "Other")
    params = {"min_position": renamed["position"]}
    assert (await http.get(f"/customers/{ann['id']}/dashboard", headers=other, params=params)).status_code == 404
    top = await http.get("/dashboards/top-customers", headers=other, params=params)
    assert top.status_code == 200 and top.json()["customers"] == []

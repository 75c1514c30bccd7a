"""A command, then each reader with ``min_position``: the write is there, and the reader says where it read."""

from __future__ import annotations

import time

from projections.registry import PROJECTIONS
from tests.conftest import OPERATOR, eventually
from tests.e2e.conftest import headers_of, open_tenant


class Shop:
    def __init__(self, http, tenant: str) -> None:
        self.http, self.tenant = http, tenant
        self.headers = headers_of(tenant)

    async def post(self, path: str, body: dict, expect: int = 200, **headers) -> dict:
        response = await self.http.post(path, json=body, headers=self.headers | headers)
        assert response.status_code == expect, response.text
        return response.json()

    async def get(self, path: str, min_position: int, **params) -> tuple[dict, int]:
        response = await self.http.get(path, params=params | {"min_position": min_position}, headers=self.headers)
        assert response.status_code == 200, response.text
        assert response.headers["X-Prism-Stale"] == "false"
        return response.json(), int(response.headers["X-Prism-Position"])


async def open_shop(http, tenant: str) -> tuple[Shop, dict]:
    shop = Shop(http, tenant)
    customer = await shop.post("/customers", {"name": "Zoë Dupré", "email": "zoe@dupre.example"}, 201)
    product = await shop.post("/products", {"name": "Gizmo Deluxe", "price": "12.50"}, 201)
    order = await shop.post(
        "/orders", {"customer_id": customer["id"], "items": [{"product_id": product["id"], "quantity": 2}]}, 201
    )
    return shop, {"customer": customer, "product": product, "order": order}


async def test_an_order_is_readable_in_all_four_stores_at_its_position(http, api_tenant):
    shop, made = await open_shop(http, api_tenant)
    pos = made["order"]["position"]

    summary, served = await shop.get(f"/orders/{made['order']['id']}", pos)
    assert served >= pos and summary["consistency"] == {"position": served, "stale": False, "min_position": pos}
    assert (summary["status"], summary["total"], summary["customer_name"]) == ("pending", "25.00", "Zoë Dupré")
    assert summary["items"][0]["product_name"] == "Gizmo Deluxe"

    found, _ = await shop.get("/search", pos, q="Gizmo")
    assert [h["order_id"] for h in found["hits"]] == [made["order"]["id"]]

    top, _ = await shop.get("/analytics/top-products", pos)
    assert top["rows"] == [
        {"product_id": made["product"]["id"], "name": "Gizmo Deluxe", "quantity": 2, "revenue": "25.00"}
    ]
    revenue, _ = await shop.get("/analytics/revenue", pos)
    assert [(r["orders"], r["revenue"]) for r in revenue["rows"]] == [(1, "25.00")]

    board, _ = await shop.get(f"/customers/{made['customer']['id']}/dashboard", pos)
    assert (board["orders"]["total"], board["orders"]["pending"], board["lifetime_value"]) == (1, 1, "25.00")


async def test_lifecycle_and_discount_reach_every_reader(http, api_tenant):
    shop, made = await open_shop(http, api_tenant)
    oid = made["order"]["id"]
    await shop.post(f"/orders/{oid}/discount", {"percent": "20", "authorised_by": "Dana", "expected_version": 1})
    await shop.post(f"/orders/{oid}/confirm", {"expected_version": 2})
    shipped = await shop.post(f"/orders/{oid}/ship", {"expected_version": 3})
    other = await shop.post(
        "/orders",
        {"customer_id": made["customer"]["id"], "items": [{"product_id": made["product"]["id"], "quantity": 1}]},
        201,
    )
    cancelled = await shop.post(f"/orders/{other['id']}/cancel", {"expected_version": 1, "reason": "too late"})
    pos = max(shipped["position"], cancelled["position"])

    summary, _ = await shop.get(f"/orders/{oid}", pos)
    assert (summary["status"], summary["discount"], summary["total"], summary["version"]) == (
        "shipped",
        "5.00",
        "20.00",
        4,
    )
    found, _ = await shop.get("/search", pos, status="cancelled")
    assert [h["order_id"] for h in found["hits"]] == [other["id"]]
    board, _ = await shop.get(f"/customers/{made['customer']['id']}/dashboard", pos)
    assert (
        board["orders"]["shipped"],
        board["orders"]["cancelled"],
        board["lifetime_value"],
        board["average_order_value"],
    ) == (1, 1, "20.00", "20.00")
    revenue, _ = await shop.get("/analytics/revenue", pos)
    assert [(r["orders"], r["revenue"]) for r in revenue["rows"]] == [(1, "20.00")]


async def test_renames_reach_redis_elasticsearch_and_dashboards(http, api_tenant):
    shop, made = await open_shop(http, api_tenant)
    cid, pid, oid = made["customer"]["id"], made["product"]["id"], made["order"]["id"]
    await shop.post(f"/customers/{cid}/name", {"name": "Zoë Martin", "expected_version": 1})
    await shop.post(f"/customers/{cid}/email", {"email": "zoe@martin.example", "expected_version": 2})
    renamed = await shop.post(f"/products/{pid}/name", {"name": "Gizmo Ultra", "expected_version": 1})
    pos = renamed["position"]

    summary, _ = await shop.get(f"/orders/{oid}", pos)
    assert (summary["customer_name"], summary["customer_email"], summary["items"][0]["product_name"]) == (
        "Zoë Martin",
        "zoe@martin.example",
        "Gizmo Ultra",
    )
    by_name, _ = await shop.get("/search", pos, q="Martin")
    by_product, _ = await shop.get("/search", pos, q="Ultra")
    assert [h["order_id"] for h in by_name["hits"]] == [h["order_id"] for h in by_product["hits"]] == [oid]
    assert by_name["hits"][0]["products"] == ["Gizmo Ultra"]
    board, _ = await shop.get(f"/customers/{cid}/dashboard", pos)
    assert (board["name"], board["email"]) == ("Zoë Martin", "zoe@martin.example")
    top, _ = await shop.get("/analytics/top-products", pos)
    assert top["rows"][0]["name"] == "Gizmo Ultra"


async def test_a_position_not_reached_in_time_is_answered_as_stale(http, api_tenant):
    shop, made = await open_shop(http, api_tenant)
    beyond = made["order"]["position"] + 1_000_000
    started = time.monotonic()
    response = await http.get(f"/orders/{made['order']['id']}", params={"min_position": beyond}, headers=shop.headers)
    waited = time.monotonic() - started
    assert response.status_code == 200
    assert response.headers["X-Prism-Stale"] == "true"
    assert response.json()["consistency"]["stale"] is True
    assert 1.5 <= waited < 5, waited


async def test_each_reader_filters_by_tenant(http, api_tenant, bus):
    _shop, made = await open_shop(http, api_tenant)
    pos = made["order"]["position"]
    stranger = await open_tenant(http, api_tenant + "-x", "Stranger")
    assert (
        await http.get(f"/orders/{made['order']['id']}", headers=stranger, params={"min_position": pos})
    ).status_code == 404
    assert (
        await http.get(f"/customers/{made['customer']['id']}/dashboard", headers=stranger, params={"min_position": pos})
    ).status_code == 404
    found = (await http.get("/search", params={"q": "Gizmo", "min_position": pos}, headers=stranger)).json()
    assert found["total"] == 0
    top = (await http.get("/analytics/top-products", params={"min_position": pos}, headers=stranger)).json()
    assert top["rows"] == []


async def test_projections_report_lag_zero_once_caught_up(http, api_tenant):
    await open_shop(http, api_tenant)
    rows: list = []

    async def caught_up() -> bool:
        rows[:] = (await http.get("/projections", headers=OPERATOR)).json()
        return all(r["lag_events"] == 0 for r in rows)

    await eventually(caught_up, timeout=20, what="lag 0 in every projection")
    assert {r["projection"] for r in rows} == set(PROJECTIONS)
    assert all(r["checkpoint"] == r["head"] and r["lag_seconds"] == 0 for r in rows)

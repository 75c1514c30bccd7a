"""Search people love, on the real Elasticsearch: folding, typos, highlights, facets, deep pages, suggestions."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.e2e.conftest import open_tenant
from tests.e2e.test_read_your_writes import Shop


@pytest.fixture
async def catalogue(http, api_tenant):
    shop = Shop(http, api_tenant)
    jose = await shop.post("/customers", {"name": "José Álvarez", "email": "jose@alvarez.example"}, 201)
    mia = await shop.post("/customers", {"name": "Mia Stone", "email": "mia@stone.example"}, 201)
    widget = await shop.post("/products", {"name": "Widget Pro", "price": "40.00"}, 201)
    gadget = await shop.post("/products", {"name": "Gadget Max", "price": "5.00"}, 201)
    orders = [
        await shop.post(
            "/orders", {"customer_id": jose["id"], "items": [{"product_id": widget["id"], "quantity": 1}]}, 201
        )
    ]
    for n in range(24):
        orders.append(
            await shop.post(
                "/orders", {"customer_id": mia["id"], "items": [{"product_id": gadget["id"], "quantity": n + 1}]}, 201
            )
        )
    return shop, {
        "jose": jose,
        "mia": mia,
        "widget": widget,
        "gadget": gadget,
        "orders": orders,
        "position": orders[-1]["position"],
    }


async def test_folded_and_typo_tolerant_full_text_with_highlights(catalogue):
    shop, made = catalogue
    by_name, _ = await shop.get("/search", made["position"], q="jose alvarez")
    assert [h["order_id"] for h in by_name["hits"]] == [made["orders"][0]["id"]]
    assert "<em>José</em>" in by_name["hits"][0]["highlights"]["customer_name"][0]
    typo, _ = await shop.get("/search", made["position"], q="widgte")
    assert [h["order_id"] for h in typo["hits"]] == [made["orders"][0]["id"]]
    assert typo["hits"][0]["highlights"]["items.product_name"] == ["<em>Widget</em> Pro"]


async def test_suggestions_complete_names_from_a_prefix(catalogue):
    shop, made = catalogue
    assert (await shop.get("/search/suggest", made["position"], q="wid"))[0]["suggestions"] == ["Widget Pro"]
    assert (await shop.get("/search/suggest", made["position"], q="jos"))[0]["suggestions"] == ["José Álvarez"]
    both, _ = await shop.get("/search/suggest", made["position"], q="m")
    assert both["suggestions"] == ["Gadget Max", "Mia Stone"]  # 24 orders each, then by name


async def test_facets_filters_and_sorts(catalogue):
    shop, made = catalogue
    found, _ = await shop.get("/search", made["position"], histogram_interval=50, facets="status,total,products")
    assert found["total"] == 25 and found["facets"]["status"] == [{"key": "pending", "count": 25}]
    assert found["facets"]["top_products"] == [{"key": "Gadget Max", "count": 24}, {"key": "Widget Pro", "count": 1}]
    assert sum(b["count"] for b in found["facets"]["total_histogram"]) == 25
    assert found["facets"]["total_histogram"][0] == {"key": "0.0", "count": 10}  # 5.00 .. 45.00 and the 40.00
    only, _ = await shop.get("/search", made["position"], facets="products")
    assert only["facets"] == {"status": None, "total_histogram": None, "top_products": found["facets"]["top_products"]}
    unasked, _ = await shop.get("/search", made["position"])
    assert unasked["facets"] is None and unasked["total"] == 25
    unknown = await shop.http.get("/search", params={"facets": "status,colour"}, headers=shop.headers)
    assert unknown.status_code == 422 and unknown.json()["field"] == "facets" and "colour" in unknown.json()["message"]
    dearest, _ = await shop.get("/search", made["position"], sort="total_desc", customer_id=made["mia"]["id"])
    assert [h["total"] for h in dearest["hits"][:2]] == ["120.00", "115.00"]
    assert all(h["customer_id"] == made["mia"]["id"] for h in dearest["hits"])
    today = date.today()
    none, _ = await shop.get("/search", made["position"], to=today.isoformat())
    assert none["total"] == 0
    window, _ = await shop.get(
        "/search", made["position"], **{"from": today.isoformat(), "to": (today + timedelta(days=2)).isoformat()}
    )
    assert window["total"] == 25


async def test_cursor_pages_reach_every_order_once(catalogue):
    shop, made = catalogue
    first, _ = await shop.get("/search", made["position"], sort="oldest")
    second, _ = await shop.get("/search", made["position"], sort="oldest", cursor=first["next_cursor"])
    seen = [h["order_id"] for h in first["hits"] + second["hits"]]
    assert seen == [o["id"] for o in made["orders"]] and second["next_cursor"] is None
    too_deep = await shop.http.get("/search", params={"page": 600}, headers=shop.headers)
    assert too_deep.status_code == 422 and "follow next_cursor" in too_deep.json()["message"]
    forged = await shop.http.get("/search", params={"cursor": "not-a-cursor"}, headers=shop.headers)
    assert forged.status_code == 422 and forged.json()["field"] == "cursor"


async def test_another_tenant_finds_and_is_suggested_nothing(catalogue, http):
    shop, made = catalogue
    other = await open_tenant(http, f"{shop.tenant}-z", "Other")
    params = {"min_position": made["position"]}
    found = (
        await http.get("/search", params=params | {"q": "jose", "facets": "status,products"}, headers=other)
    ).json()
    assert found["total"] == 0 and found["facets"]["top_products"] == [] and found["facets"]["status"] == []
    suggested = (await http.get("/search/suggest", params=params | {"q": "wid"}, headers=other)).json()
    assert suggested["suggestions"] == []

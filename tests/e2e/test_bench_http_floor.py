"""The readers' HTTP floor answers what the order page and customer dashboard readers answer, byte for byte, from the
same stores."""

from __future__ import annotations

import httpx

from infra.bench.http_floor import floor_server
from tests.e2e.conftest import headers_of


async def _placed(http: httpx.AsyncClient, tenant: str) -> dict:
    headers = headers_of(tenant)
    customer = await http.post("/customers", json={"name": "Ana Floor", "email": "ana@floor.example"}, headers=headers)
    product = (await http.post("/products", json={"name": "Floor Lamp", "price": "40.00"}, headers=headers)).json()
    body = {"customer_id": customer.json()["id"], "items": [{"product_id": product["id"], "quantity": 2}]}
    order = await http.post("/orders", json=body, headers=headers)
    assert order.status_code == 201, order.text
    return {"customer": customer.json()["id"], "order": order.json()["id"], "position": order.json()["position"]}


async def test_the_floor_answers_the_readers_bytes(http, api_tenant, fresh_services):
    made = await _placed(http, api_tenant)
    headers = headers_of(api_tenant)
    paths = [f"/orders/{made['order']}", f"/customers/{made['customer']}/dashboard"]
    for path in paths:  # both stores have the order before either side is read
        read = await http.get(path, params={"min_position": made["position"]}, headers=headers)
        assert read.headers["X-Prism-Stale"] == "false"
    async with floor_server(fresh_services, api_tenant) as base, httpx.AsyncClient(base_url=base) as floor:
        for path in paths:
            before = (await http.get(path, headers=headers)).content
            bare = await floor.get(path)
            after = (await http.get(path, headers=headers)).content
            assert bare.status_code == 200
            assert bare.content in (before, after)  # the stores' checkpoints may move on between the reads
            assert made["order"].encode() in bare.content
        assert (await floor.get(f"/orders/{made['order'][:-12]}000000000000")).status_code == 404

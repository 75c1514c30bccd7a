"""The OpenAPI at /docs: every reader route is there, with an example answer."""

from __future__ import annotations

READERS = [
    "/orders/{order_id}",
    "/customers/{customer_id}/orders",
    "/search",
    "/search/suggest",
    "/analytics/revenue",
    "/analytics/top-products",
    "/analytics/summary",
    "/analytics/orders-by-hour",
    "/analytics/sql",
    "/customers/{customer_id}/dashboard",
    "/dashboards/top-customers",
]


async def test_every_reader_is_documented_with_an_example(http):
    spec = (await http.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    for path in READERS:
        operations = spec["paths"][path]
        operation = operations.get("get") or operations["post"]
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        model = schemas[schema["$ref"].rsplit("/", 1)[1]]
        assert model.get("examples"), f"{path} answers without an example"
        example = model["examples"][0]
        assert "consistency" in example and set(example) <= set(model["properties"]), f"{path}: {example}"
    assert (await http.get("/docs")).status_code == 200

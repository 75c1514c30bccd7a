"""Product names searched in one flat field find what one nested document per line found: the same hits, in the
same order, with the same highlights.

The reference is the nested design itself: the served documents copied into an
index with nested items, searched with its query (a nested match with inner hits),
beside the same documents copied into an index of the flat design (so that both
score with the same statistics, which the served index shares with other tenants).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from projections.layouts.order_search import Names
from projections.order_search import MAPPING
from readers.order_search import HIGHLIGHTED, search_body
from tests.e2e.conftest import open_tenant
from tests.e2e.test_pinned_answers import Sample
from tests.e2e.test_read_your_writes import Shop

_NAME = MAPPING["properties"]["customer_name"]
NESTED_ITEMS = {
    "type": "nested",
    "properties": {
        "name_position": {"type": "long", "index": False},
        "line_no": {"type": "short"},
        "product_id": {"type": "keyword"},
        "product_name": _NAME,
        "quantity": {"type": "integer"},
        "unit_price": {"type": "double"},
        "line_total": {"type": "double"},
    },
}
QUERIES = [
    {"q": "widgte"},
    {"q": "jose"},
    {"q": "mug grande"},
    {"q": "kettel"},
    {"q": "zoe"},
    {"q": "lamp"},
    {"q": "mug", "sort": "total_desc"},
    {"q": "widget", "status": "confirmed"},
    {"q": "pro"},
    {"q": "grande mini"},
    {"q": "dupre kettle"},
]


def nested_body(tenant: str, q: str, status: str | None = None, sort: str | None = None) -> dict[str, Any]:
    """The search as the nested design sent it."""
    body = search_body(tenant, q, status, sort=sort)
    should = body["query"]["bool"]["must"][0]["bool"]["should"]
    should[1] = {
        "nested": {
            "path": "items",
            "score_mode": "max",
            "inner_hits": {"size": 5, "_source": False, "highlight": {"fields": {"items.product_name": {}}}},
            "query": {"match": {"items.product_name": {"query": q, "fuzziness": "AUTO"}}},
        }
    }
    body["highlight"] = {"fields": {f: {} for f in HIGHLIGHTED if f != "product_names"}}
    return body


def _seen(found: dict[str, Any], nested: bool) -> list[tuple[str, list[str]]]:
    """Each hit's order and its product-name highlights."""
    seen = []
    for hit in found["hits"]["hits"]:
        if nested:
            inner = hit["inner_hits"]["items"]["hits"]["hits"]
            names = [f for h in inner for f in h.get("highlight", {}).get("items.product_name", [])]
        else:
            names = hit.get("highlight", {}).get("product_names", [])
        seen.append((hit["_id"], sorted(names)))
    return seen


@pytest.fixture
async def copies(stores):
    """Two empty indexes with the served index's analysis: the nested design's and the flat one's."""
    names = Names(stores.namespace)
    served = await stores.elasticsearch.indices.get_settings(index=names.alias)
    analysis = next(iter(served.values()))["settings"]["index"]["analysis"]
    nested = copy.deepcopy(MAPPING)
    nested["properties"]["items"] = NESTED_ITEMS
    for flat in ("product_names", "product_ids"):
        nested["properties"].pop(flat)
    made = {"nested": f"{names.alias}-nested-reference", "flat": f"{names.alias}-flat-reference"}
    for kind, mapping in (("nested", nested), ("flat", MAPPING)):
        await stores.elasticsearch.indices.delete(index=made[kind], ignore_unavailable=True)
        await stores.elasticsearch.indices.create(
            index=made[kind],
            mappings=mapping,
            settings={"number_of_shards": 1, "number_of_replicas": 0, "analysis": analysis},
        )
    yield made
    for index in made.values():
        await stores.elasticsearch.indices.delete(index=index, ignore_unavailable=True)


async def test_flat_product_names_find_the_hits_nested_items_found(http, tenant_id, stores, copies):
    await open_tenant(http, tenant_id)
    sample = Sample(Shop(http, tenant_id))
    await sample.make()
    await Shop(http, tenant_id).get("/search", sample.position)  # the index has reached the sample
    es, alias = stores.elasticsearch, Names(stores.namespace).alias
    query = {"term": {"tenant_id": tenant_id}}
    docs = (await es.search(index=alias, query=query, size=100))["hits"]["hits"]
    operations = []
    for doc in docs:
        source = {k: v for k, v in doc["_source"].items() if k not in ("product_names", "product_ids")}
        operations += [
            {"index": {"_index": copies["nested"], "_id": doc["_id"]}},
            source,
            {"index": {"_index": copies["flat"], "_id": doc["_id"]}},
            doc["_source"],
        ]
    await es.bulk(operations=operations, refresh=True)
    assert len(docs) == 6

    for asked in QUERIES:
        flat = await es.search(index=copies["flat"], **search_body(tenant_id, **asked))
        nested = await es.search(index=copies["nested"], **nested_body(tenant_id, **asked))
        assert _seen(flat, nested=False) == _seen(nested, nested=True), asked
        assert flat["hits"]["hits"], asked  # every query of the set finds something
    products = await es.search(index=copies["flat"], **search_body(tenant_id, "grande"))
    assert any(names for _, names in _seen(products, nested=False))  # product names are matched and highlighted

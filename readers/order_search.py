"""The search box, read from the Elasticsearch order index."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from projections.order_search import Names, read_checkpoint
from readers.consistency import Consistency, wait_for
from readers.deps import MinPosition, StoresDep, Tenant, WaitSeconds
from readers.errors import InvalidQuery

router = APIRouter(tags=["search (Elasticsearch)"])
PAGE_SIZE = 20
STATUSES = ("pending", "confirmed", "shipped", "cancelled")


class Hit(BaseModel):
    order_id: str
    customer_id: str
    customer_name: str
    customer_email: str
    status: str
    total: str
    placed_at: str
    products: list[str]
    score: float | None


class SearchResults(BaseModel):
    total: int
    page: int
    page_size: int
    hits: list[Hit]
    consistency: Consistency


def search_query(tenant: str, q: str | None, status: str | None, min_total: Decimal | None,
                 max_total: Decimal | None) -> dict[str, Any]:
    """Tenant-filtered full text over customer and product names, with exact filters."""
    filters: list[dict[str, Any]] = [{"term": {"tenant_id": tenant}}]
    if status:
        filters.append({"term": {"status": status}})
    if min_total is not None or max_total is not None:
        bounds = {k: str(v) for k, v in (("gte", min_total), ("lte", max_total)) if v is not None}
        filters.append({"range": {"total": bounds}})
    must: list[dict[str, Any]] = []
    if q:
        must.append({"bool": {"minimum_should_match": 1, "should": [
            {"multi_match": {"query": q, "fields": ["customer_name^2", "customer_email", "note", "cancel_reason"],
                             "fuzziness": "AUTO"}},
            {"nested": {"path": "items", "score_mode": "max", "query": {
                "match": {"items.product_name": {"query": q, "fuzziness": "AUTO"}}}}},
        ]}})
    return {"bool": {"filter": filters, "must": must or [{"match_all": {}}]}}


@router.get("/search", response_model=SearchResults)
async def search_orders(tenant: Tenant, stores: StoresDep, wait: WaitSeconds, response: Response,
                        q: Annotated[str | None, Query(max_length=200)] = None,
                        status: Annotated[str | None, Query(pattern="^(pending|confirmed|shipped|cancelled)$")] = None,
                        min_total: Annotated[Decimal | None, Query(ge=0, le=Decimal("1e10"))] = None,
                        max_total: Annotated[Decimal | None, Query(ge=0, le=Decimal("1e10"))] = None,
                        page: Annotated[int, Query(ge=1, le=500)] = 1,
                        min_position: MinPosition = None) -> Any:
    if min_total is not None and max_total is not None and min_total > max_total:
        raise InvalidQuery("min_total must not exceed max_total", "min_total")
    names = Names(stores.namespace)
    served = await wait_for(lambda: read_checkpoint(stores.elasticsearch, names, served=True), min_position, wait)
    sort = None if q else [{"placed_at": "desc"}]
    found = await stores.elasticsearch.search(
        index=names.alias, query=search_query(tenant, q, status, min_total, max_total), sort=sort,
        from_=(page - 1) * PAGE_SIZE, size=PAGE_SIZE, track_total_hits=True)
    served.stamp(response)
    return {"total": found["hits"]["total"]["value"], "page": page, "page_size": PAGE_SIZE,
            "hits": [_hit(h) for h in found["hits"]["hits"]], "consistency": served.model()}


def _hit(hit: dict[str, Any]) -> dict[str, Any]:
    doc = hit["_source"]
    return {key: doc[key] for key in ("order_id", "customer_id", "customer_name", "customer_email", "status",
                                      "total", "placed_at")} | {
        "products": [item["product_name"] for item in doc["items"]], "score": hit.get("_score")}


"""The search box, read from the Elasticsearch order index.

Full text is folded ("jose" finds "José") and typo-tolerant (fuzziness AUTO) over
customer name and email, product names, notes and cancellation reasons. Pages go by
``page`` near the top and by ``cursor`` (``search_after`` on the sort values plus the
order id) anywhere, so deep pages never ask Elasticsearch for ``from`` past 10,000.
"""

from __future__ import annotations

import base64
import json
import re
import unicodedata
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from projections.layouts.order_search import PROJECTION, Names, read_checkpoint
from projections.stores.clients import Stores
from readers import examples
from readers.consistency import Consistency, ReadWait, Served, wait_for
from readers.deps import IsoDate, MinPosition, StoresDep, Tenant, Wait
from readers.errors import InvalidQuery

router = APIRouter(tags=["search (Elasticsearch)"])
PAGE_SIZE = 20
#: The base64url alphabet ``_encode`` writes (with its padding); which strings in it are cursors depends on what
#: this API gave out, which no schema can say.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+={0,2}$"
#: Elasticsearch's own window for from + size; deeper pages go by cursor.
MAX_WINDOW = 10_000
TEXT_FIELDS = ["customer_name^3", "customer_email", "note", "cancel_reason"]
HIGHLIGHTED = ("customer_name", "customer_email", "note", "cancel_reason", "product_names")
#: Highlighters other than the default: product names have term vectors, for which the vector highlighter is
#: several times faster than the default one re-running a fuzzy query on every hit.
HIGHLIGHTERS = {"product_names": {"type": "fvh"}}
#: The key a hit's highlights carry for a field, where it is not the field's own name.
HIGHLIGHT_KEYS = {"product_names": "items.product_name"}
#: Product names the suggest aggregation brings back before those the prefix does not start are left out.
SUGGEST_CANDIDATES = 100
#: What ``facets`` may ask for, and the aggregation each needs.
FACETS = ("status", "total", "products")
SORTS: dict[str, list[dict[str, Any]]] = {
    "relevance": [{"_score": "desc"}, {"placed_at": "desc"}],
    "newest": [{"placed_at": "desc"}],
    "oldest": [{"placed_at": "asc"}],
    "total_desc": [{"total": "desc"}],
    "total_asc": [{"total": "asc"}],
}
Money = Annotated[Decimal | None, Query(ge=0, le=Decimal("1e10"))]


class Hit(BaseModel):
    order_id: str
    customer_id: str
    customer_name: str
    customer_email: str
    status: str
    total: str
    placed_at: str
    products: list[str]
    highlights: dict[str, list[str]] = Field(description="Matched terms wrapped in <em>, per field")


class Bucket(BaseModel):
    key: str
    count: int


class Facets(BaseModel):
    """The facets asked for with ``facets``; the others are null."""

    status: list[Bucket] | None = None
    total_histogram: list[Bucket] | None = Field(
        None, description="Orders per total range; key is the range's lower bound (facet total)"
    )
    top_products: list[Bucket] | None = Field(None, description="Orders per product name (facet products)")


class SearchResults(BaseModel):
    model_config = examples.example(examples.SEARCH)

    total: int
    page: int | None
    page_size: int
    hits: list[Hit]
    facets: Facets | None = Field(description="Only when asked for with facets; null otherwise")
    next_cursor: str | None = Field(description="Pass as cursor for the next page (works at any depth)")
    consistency: Consistency


class Suggestions(BaseModel):
    model_config = examples.example(examples.SUGGESTIONS)

    suggestions: list[str]
    consistency: Consistency


def search_query(
    tenant: str,
    q: str | None,
    status: str | None,
    min_total: Decimal | None,
    max_total: Decimal | None,
    start: date | None = None,
    end: date | None = None,
    customer_id: str | None = None,
) -> dict[str, Any]:
    """Tenant-filtered, folded, typo-tolerant full text with exact filters."""
    filters: list[dict[str, Any]] = [{"term": {"tenant_id": tenant}}]
    if status:
        filters.append({"term": {"status": status}})
    if customer_id:
        filters.append({"term": {"customer_id": customer_id}})
    if min_total is not None or max_total is not None:
        bounds = {k: str(v) for k, v in (("gte", min_total), ("lte", max_total)) if v is not None}
        filters.append({"range": {"total": bounds}})
    if start or end:
        filters.append({"range": {"placed_at": {k: v.isoformat() for k, v in (("gte", start), ("lt", end)) if v}}})
    must: list[dict[str, Any]] = []
    if q:
        must.append(
            {
                "bool": {
                    "minimum_should_match": 1,
                    "should": [
                        {"multi_match": {"query": q, "fields": TEXT_FIELDS, "fuzziness": "AUTO"}},
                        {"match": {"product_names": {"query": q, "fuzziness": "AUTO"}}},
                    ],
                }
            }
        )
    return {"bool": {"filter": filters, "must": must or [{"match_all": {}}]}}


def facets_request(asked: frozenset[str], histogram_interval: int) -> dict[str, Any]:
    aggs = {
        "status": ("status", {"terms": {"field": "status", "size": 10}}),
        "total": (
            "total_histogram",
            {"histogram": {"field": "total", "interval": histogram_interval, "min_doc_count": 1}},
        ),
        "products": ("top_products", {"terms": {"field": "product_names.raw", "size": 10}}),
    }
    return {name: agg for facet, (name, agg) in aggs.items() if facet in asked}


def search_body(
    tenant: str,
    q: str | None,
    status: str | None = None,
    min_total: Decimal | None = None,
    max_total: Decimal | None = None,
    start: date | None = None,
    end: date | None = None,
    customer_id: str | None = None,
    sort: str | None = None,
    facets: frozenset[str] = frozenset(),
    histogram_interval: int = 100,
) -> dict[str, Any]:
    """The whole search request but its paging: what ``/search`` sends Elasticsearch."""
    sort = sort or ("relevance" if q else "newest")
    body = {
        "query": search_query(tenant, q, status, min_total, max_total, start, end, customer_id),
        "sort": SORTS[sort] + [{"order_id": "asc"}],
        "size": PAGE_SIZE,
        "track_total_hits": True,
        "highlight": {"fields": {field: HIGHLIGHTERS.get(field, {}) for field in HIGHLIGHTED}},
    }
    if facets:
        body["aggs"] = facets_request(facets, histogram_interval)
    return body


def _asked_facets(facets: str | None) -> frozenset[str]:
    asked = frozenset(name.strip() for name in (facets or "").split(",") if name.strip())
    unknown = sorted(asked - set(FACETS))
    if unknown:
        raise InvalidQuery(
            f"unknown facet {', '.join(unknown)}; facets takes a comma-separated subset of {','.join(FACETS)}", "facets"
        )
    return asked


@router.get("/search", response_model=SearchResults)
async def search_orders(
    tenant: Tenant,
    stores: StoresDep,
    wait: Wait,
    response: Response,
    q: Annotated[str | None, Query(max_length=200, examples=["widgte"])] = None,
    status: Annotated[str | None, Query(pattern="^(pending|confirmed|shipped|cancelled)$")] = None,
    min_total: Money = None,
    max_total: Money = None,
    start: Annotated[IsoDate | None, Query(alias="from", description="Placed on or after")] = None,
    end: Annotated[IsoDate | None, Query(alias="to", description="Placed before")] = None,
    customer_id: Annotated[str | None, Query(pattern=r"^[0-9a-fA-F-]{36}$")] = None,
    sort: Literal["relevance", "newest", "oldest", "total_desc", "total_asc"] | None = None,
    page: Annotated[int | None, Query(ge=1, description="Page number (20 hits a page); not with cursor")] = None,
    cursor: Annotated[
        str | None,
        Query(max_length=500, pattern=CURSOR_PATTERN, description=("next_cursor of the page before; not with page")),
    ] = None,
    facets: Annotated[
        str | None,
        Query(
            max_length=100,
            examples=["status,total,products"],
            description="Facets to compute, comma-separated: status, total, products; none by default",
        ),
    ] = None,
    histogram_interval: Annotated[int, Query(ge=1, le=1_000_000)] = 100,
    min_position: MinPosition = None,
) -> Any:
    if min_total is not None and max_total is not None and min_total > max_total:
        raise InvalidQuery("min_total must not exceed max_total", "min_total")
    if page and cursor:
        raise InvalidQuery("give page or cursor, not both", "cursor")
    if page and page * PAGE_SIZE > MAX_WINDOW:
        raise InvalidQuery(f"page {page} is past the first {MAX_WINDOW} results; follow next_cursor instead", "page")
    sort = sort or ("relevance" if q else "newest")
    asked = _asked_facets(facets)
    after = _decode(cursor, sort) if cursor else None  # checked before any wait
    names, served = await _served(stores, min_position, wait, tenant)
    body = search_body(
        tenant, q, status, min_total, max_total, start, end, customer_id, sort, asked, histogram_interval
    )
    found = await stores.elasticsearch.search(
        index=names.alias, **body, **await _paging(stores, names, body["query"], sort, after, page)
    )
    served.stamp(response)
    hits = found["hits"]["hits"]
    more = len(hits) == PAGE_SIZE and (cursor or (page or 1) * PAGE_SIZE < found["hits"]["total"]["value"])
    return {
        "total": found["hits"]["total"]["value"],
        "page": None if cursor else (page or 1),
        "page_size": PAGE_SIZE,
        "hits": [_hit(h) for h in hits],
        "facets": _facets(found["aggregations"]) if asked else None,
        "next_cursor": _encode(sort, hits[-1]["sort"]) if more else None,
        "consistency": served.model(),
    }


@router.get("/search/suggest", response_model=Suggestions)
async def suggest(
    tenant: Tenant,
    stores: StoresDep,
    wait: Wait,
    response: Response,
    q: Annotated[str, Query(min_length=1, max_length=50, examples=["wid"])],
    min_position: MinPosition = None,
) -> Any:
    """Customer and product names starting with what was typed (folded: "jos" suggests "José"), at most 10."""
    names, served = await _served(stores, min_position, wait, tenant)
    prefix = {"match": {"customer_name.prefix": {"query": q, "operator": "and"}}}
    product_prefix = {"match": {"product_names.prefix": {"query": q, "operator": "and"}}}
    found = await stores.elasticsearch.search(
        index=names.alias,
        size=0,
        query={
            "bool": {
                "filter": [{"term": {"tenant_id": tenant}}],
                "should": [prefix, product_prefix],
                "minimum_should_match": 1,
            }
        },
        aggs={
            "customers": {"filter": prefix, "aggs": {"names": {"terms": {"field": "customer_name.raw", "size": 10}}}},
            "products": {
                "filter": product_prefix,
                "aggs": {"names": {"terms": {"field": "product_names.raw", "size": SUGGEST_CANDIDATES}}},
            },
        },
    )
    # an order matching one product name brings all its names: keep those the prefix itself matches
    products = [b for b in found["aggregations"]["products"]["names"]["buckets"] if starts_with(b["key"], q)]
    ranked = sorted(
        found["aggregations"]["customers"]["names"]["buckets"] + products, key=lambda b: (-b["doc_count"], b["key"])
    )
    served.stamp(response)
    return {"suggestions": list(dict.fromkeys(b["key"] for b in ranked))[:10], "consistency": served.model()}


async def _served(stores: Stores, min_position: int | None, wait: ReadWait, tenant: str) -> tuple[Names, Served]:
    """The index names, and the served version's checkpoint (of the tenant's partition) once it has reached
    ``min_position`` (or the wait is over)."""
    names = Names(stores.namespace)

    async def read(part: str) -> int:
        return await read_checkpoint(stores.elasticsearch, names, served=True, part=part)

    return names, await wait_for(read, min_position, wait, PROJECTION, tenant)


def starts_with(name: str, typed: str) -> bool:
    """Whether every word typed starts a word of ``name``, both folded as the index folds them."""
    words = _words(name)
    return all(any(word.startswith(part) for word in words) for part in _words(typed))


def _words(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKD", text.lower())
    return re.findall(r"\w+", "".join(c for c in folded if not unicodedata.combining(c)))


def _hit(hit: dict[str, Any]) -> dict[str, Any]:
    doc = hit["_source"]
    highlights = {HIGHLIGHT_KEYS.get(field, field): found for field, found in hit.get("highlight", {}).items()}
    return {
        key: doc[key]
        for key in ("order_id", "customer_id", "customer_name", "customer_email", "status", "total", "placed_at")
    } | {"products": [item["product_name"] for item in doc["items"]], "highlights": highlights}


def _facets(aggs: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    def buckets(found: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"key": str(b["key"]), "count": b["doc_count"]} for b in found["buckets"]]

    return {name: buckets(found) for name, found in aggs.items()}


async def _paging(
    stores: Stores, names: Names, query: dict[str, Any], sort: str, after: list[Any] | None, page: int | None
) -> dict[str, Any]:
    """``search_after`` the cursor's values (with the relevance score recomputed), else ``from`` the page."""
    if after is None:
        return {"from_": ((page or 1) - 1) * PAGE_SIZE}
    if sort == "relevance":
        return {"search_after": [await _score_of(stores, names, query, after[-1]), *after]}
    return {"search_after": after}


async def _score_of(stores: Stores, names: Names, query: dict[str, Any], order_id: str) -> float:
    """The relevance score of the cursor's order under this query, recomputed: a cursor that carried it would tell
    how rare a term is across every tenant's documents (the index statistics are shared)."""
    pinned = {"bool": query["bool"] | {"filter": [*query["bool"]["filter"], {"term": {"order_id": order_id}}]}}
    found = await stores.elasticsearch.search(index=names.alias, query=pinned, size=1, source=False)
    if not found["hits"]["hits"]:
        raise InvalidQuery(
            "cursor's order does not match this search (any more); start again from the first page", "cursor"
        )
    return found["hits"]["hits"][0]["_score"]


def _encode(sort: str, sort_values: list[Any]) -> str:
    """The sort's name and the last hit's sort values, without the relevance score (see ``_score_of``)."""
    values = sort_values[1:] if sort == "relevance" else sort_values
    return base64.urlsafe_b64encode(json.dumps([sort, *values]).encode()).decode()


_ORDER_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: What a cursor may hold for each sort field: Elasticsearch answers a 500 for values of the wrong kind or count.
_CURSOR_VALUES: dict[str, Callable[[Any], bool]] = {
    "placed_at": lambda v: type(v) is int and -(2**63) <= v < 2**63,  # epoch milliseconds
    "total": lambda v: type(v) in (int, float) and abs(v) <= 1e10,  # also refuses NaN and infinities
    "order_id": lambda v: isinstance(v, str) and _ORDER_ID.fullmatch(v) is not None,
}


def _decode(cursor: str, sort: str) -> list[Any]:
    """The sort values a cursor carries, checked against the fields ``sort`` orders by."""
    given = _cursor_json(cursor)
    if not isinstance(given, list) or not given or not isinstance(given[0], str) or given[0] not in SORTS:
        raise InvalidQuery(_NOT_OURS, "cursor")
    if given[0] != sort:
        raise InvalidQuery(
            f"cursor pages the sort {given[0]!r}, not {sort!r}; ask with sort={given[0]} or start "
            f"again from the first page",
            "cursor",
        )
    fields = [name for key in SORTS[sort] for name in key if name != "_score"] + ["order_id"]
    values = given[1:]
    if len(values) != len(fields) or not all(_CURSOR_VALUES[f](v) for f, v in zip(fields, values, strict=False)):
        raise InvalidQuery(_NOT_OURS, "cursor")
    return values


_NOT_OURS = "cursor is not one this API gave out; pass the next_cursor of the page before"


def _cursor_json(cursor: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, RecursionError):  # bad base64, bad UTF-8 and bad JSON are all ValueErrors
        raise InvalidQuery(_NOT_OURS, "cursor") from None

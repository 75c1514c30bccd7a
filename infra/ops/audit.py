"""Audit and repair: every read store compared with the write model, drift re-projected from the log.

Per tenant, each order's projected fields are reduced to a fingerprint and compared
with the same fields computed from the write tables; dashboards are compared with
totals recomputed from the write model. Run it when the projections are caught up
(lag 0), otherwise recent writes show up as drift.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from elasticsearch.helpers import async_scan
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.base import Projection
from projections.layouts.customer_dashboards import Tables as DashboardTables
from projections.layouts.customer_dashboards import query_served
from projections.layouts.order_analytics import Tables as AnalyticsTables
from projections.layouts.order_search import Names
from projections.layouts.order_summaries import Keys, served_version
from projections.stores.clients import Stores
from workers.locks import exclusively
from write import event_log

ORDERS_SQL = """
    SELECT o.id::text, o.status, o.total::text, o.version, c.id::text AS customer_id, c.name, c.email,
           array_agg(p.name ORDER BY i.line_no) AS products
    FROM orders o JOIN customers c ON c.id = o.customer_id
    JOIN order_items i ON i.order_id = o.id JOIN products p ON p.id = i.product_id
    WHERE o.tenant_id = :t GROUP BY o.id, c.id"""
CUSTOMERS_SQL = """
    SELECT c.id::text, c.name, c.email, count(o.id),
           round(coalesce(sum(o.total) FILTER (WHERE o.status <> 'cancelled'), 0), 2)::text
    FROM customers c LEFT JOIN orders o ON o.customer_id = c.id WHERE c.tenant_id = :t GROUP BY c.id"""


@dataclass(frozen=True)
class Drift:
    projection: str
    tenant: str
    kind: str  # missing | extra | different
    key: str  # order id, or customer id for dashboards
    detail: str = ""


def _doc_print(doc: dict[str, Any]) -> tuple:
    return (
        doc["status"],
        doc["total"],
        doc["version"],
        doc["customer_name"],
        doc["customer_email"],
        tuple(item["product_name"] for item in sorted(doc["items"], key=lambda i: i["line_no"])),
    )


async def _redis(stores: Stores, tenant: str) -> dict[str, tuple]:
    keys = Keys(stores.namespace, await served_version(stores.redis, stores.namespace))
    ids = [i.decode() for i in await stores.redis.zrange(keys.tenant_orders(tenant), 0, -1)]
    async with stores.redis.pipeline(transaction=False) as pipe:
        for oid in ids:
            pipe.hget(keys.order(oid), "doc")
        raw = await pipe.execute()
    return {oid: _doc_print(json.loads(doc)) for oid, doc in zip(ids, raw, strict=False) if doc is not None}


async def _elasticsearch(stores: Stores, tenant: str) -> dict[str, tuple]:
    query = {"query": {"term": {"tenant_id": tenant}}}
    return {
        hit["_id"]: _doc_print(hit["_source"])
        async for hit in async_scan(stores.elasticsearch, index=Names(stores.namespace).alias, query=query)
    }


async def _clickhouse(stores: Stores, tenant: str) -> dict[str, tuple]:
    sql = (
        f"SELECT toString(order_id), status, toString(total), toString(customer_id) "
        f"FROM {AnalyticsTables(stores.namespace).view('orders')} WHERE tenant_id = %(t)s"
    )
    result = await asyncio.to_thread(stores.clickhouse.query, sql, parameters={"t": tenant})
    return {
        oid: (status, str(Decimal(total).quantize(Decimal("0.01"))), cid)
        for oid, status, total, cid in result.result_rows
    }


async def _dashboards(stores: Stores, tenant: str) -> dict[str, tuple]:
    sql = (
        f"SELECT customer_id::text, name, email, order_count, lifetime_value::text "
        f"FROM {DashboardTables(stores.namespace).served} WHERE tenant_id = :t"
    )
    return {row[0]: tuple(row[1:]) for row in await query_served(stores.dashboards, sql, {"t": tenant})}


READERS = {
    "order_summaries": _redis,
    "order_search": _elasticsearch,
    "order_analytics": _clickhouse,
    "customer_dashboards": _dashboards,
}


async def _expected(write_engine: AsyncEngine, tenant: str) -> dict[str, dict[str, tuple]]:
    async with write_engine.connect() as conn:
        orders = (await conn.execute(text(ORDERS_SQL), {"t": tenant})).all()
        customers = (await conn.execute(text(CUSTOMERS_SQL), {"t": tenant})).all()
    documents = {o.id: (o.status, o.total, o.version, o.name, o.email, tuple(o.products)) for o in orders}
    return {
        "order_summaries": documents,
        "order_search": documents,
        "order_analytics": {o.id: (o.status, o.total, o.customer_id) for o in orders},
        "customer_dashboards": {c[0]: tuple(c[1:]) for c in customers},
    }


def _compare(projection: str, tenant: str, expected: dict[str, tuple], found: dict[str, tuple]) -> list[Drift]:
    drift = [Drift(projection, tenant, "missing", key) for key in expected.keys() - found.keys()]
    drift += [Drift(projection, tenant, "extra", key) for key in found.keys() - expected.keys()]
    drift += [
        Drift(projection, tenant, "different", key, f"store {found[key]} != write model {expected[key]}")
        for key in expected.keys() & found.keys()
        if expected[key] != found[key]
    ]
    return sorted(drift, key=lambda d: (d.kind, d.key))


async def tenants(write_engine: AsyncEngine) -> list[str]:
    async with write_engine.connect() as conn:
        return [row[0] for row in await conn.execute(text("SELECT id FROM tenants ORDER BY id"))]


async def audit(write_engine: AsyncEngine, stores: Stores, tenant_ids: list[str]) -> list[Drift]:
    drift: list[Drift] = []
    for tenant in tenant_ids:
        expected = await _expected(write_engine, tenant)
        for projection, read in READERS.items():
            drift += _compare(projection, tenant, expected[projection], await read(stores, tenant))
    return drift


async def repair(write_engine: AsyncEngine, projections: dict[str, Projection], drift: list[Drift]) -> int:
    """Re-project exactly the drifted aggregates; returns how many orders and customers were rewritten."""
    by_projection: dict[str, set[str]] = defaultdict(set)
    for d in drift:
        by_projection[d.projection].add(d.key)
    rewritten = 0
    for name, keys in by_projection.items():
        order_ids, customer_ids = await _aggregates(write_engine, name, sorted(keys))
        async with write_engine.connect() as conn:
            related = await _related(conn, order_ids)
            events = await event_log.read_aggregates(conn, [uuid.UUID(i) for i in order_ids + customer_ids + related])
        async with exclusively(write_engine, name):
            await projections[name].repair(order_ids, customer_ids, events)
        rewritten += len(order_ids) + len(customer_ids)
    return rewritten


async def _aggregates(write_engine: AsyncEngine, projection: str, keys: list[str]) -> tuple[list[str], list[str]]:
    """Order and customer ids to rewrite: a dashboard drift means the customer and all its orders."""
    if projection != "customer_dashboards":
        return keys, []
    async with write_engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT id::text FROM orders WHERE customer_id = ANY(:c)"), {"c": [uuid.UUID(k) for k in keys]}
        )
        return [r[0] for r in rows], keys


async def _related(conn, order_ids: list[str]) -> list[str]:
    """Customers and products of these orders: their renames must be re-applied too."""
    if not order_ids:
        return []
    rows = await conn.execute(
        text(
            "SELECT DISTINCT customer_id::text FROM orders WHERE id = ANY(:o) UNION "
            "SELECT DISTINCT product_id::text FROM order_items WHERE order_id = ANY(:o)"
        ),
        {"o": [uuid.UUID(o) for o in order_ids]},
    )
    return [r[0] for r in rows]


def report(drift: list[Drift]) -> str:
    if not drift:
        return "no drift: every store agrees with the write model"
    lines = [f"{d.projection:<20} {d.tenant:<16} {d.kind:<10} {d.key}  {d.detail}" for d in drift]
    return "\n".join([*lines, f"{len(drift)} drifted documents"])

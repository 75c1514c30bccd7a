"""The whole content one projection wrote, in a form two namespaces can be compared by."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text

from projections.customer_dashboards import CustomerDashboards
from projections.order_analytics import OrderAnalytics
from projections.order_search import OrderSearch
from projections.order_summaries import OrderSummaries


async def redis_state(p: OrderSummaries) -> dict[str, Any]:
    state: dict[str, Any] = {}
    async for raw in p.redis.scan_iter(match=f"{p.keys.prefix}*", count=1000):
        key = raw.decode()
        kind = (await p.redis.type(key)).decode()
        read = {
            "hash": p.redis.hgetall,
            "set": p.redis.smembers,
            "string": p.redis.get,
            "zset": lambda k: p.redis.zrange(k, 0, -1, withscores=True),
        }[kind]
        value = await read(key)
        state[key.removeprefix(p.keys.prefix)] = sorted(value) if kind == "set" else value
    return state


async def elasticsearch_state(p: OrderSearch) -> dict[str, Any]:
    await p.es.indices.refresh(index=[p.names.index, p.names.dimensions])
    state = {}
    for index in (p.names.index, p.names.dimensions):
        found = await p.es.search(index=index, size=10_000, query={"match_all": {}}, version=True)
        state[index.split("-", 1)[1]] = {h["_id"]: (h["_version"], h["_source"]) for h in found["hits"]["hits"]}
    return state


async def clickhouse_state(p: OrderAnalytics) -> dict[str, Any]:
    t = p.tables

    def read() -> dict[str, Any]:
        facts = {
            table.split(".")[1]: p.client.query(f"SELECT * FROM {table} FINAL ORDER BY ALL").result_rows
            for table in (t.orders, t.order_lines, t.order_events, t.products)
        }
        return facts | {
            table.split(".")[1]: p.client.query(  # a rollup's version is the time it was computed
                f"SELECT * EXCEPT version FROM {table} FINAL ORDER BY ALL"
            ).result_rows
            for table in (t.order_hours, t.product_days)
        }

    return await asyncio.to_thread(read)


async def postgres_state(p: CustomerDashboards) -> dict[str, Any]:
    t = p.tables
    async with p.engine.connect() as conn:
        return {
            table.split(".")[1]: [tuple(r) for r in await conn.execute(text(f"SELECT * FROM {table} ORDER BY 1"))]
            for table in (t.customers, t.orders, t.dashboards)
        }


READERS = {
    OrderSummaries: redis_state,
    OrderSearch: elasticsearch_state,
    OrderAnalytics: clickhouse_state,
    CustomerDashboards: postgres_state,
}


async def store_state(projection: Any) -> dict[str, Any]:
    return await READERS[type(projection)](projection)

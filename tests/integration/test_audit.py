"""Audit finds a corrupted document in each of the four stores; repair rewrites exactly those from the log."""

from __future__ import annotations

import asyncio
import json

from sqlalchemy import text

from infra.ops import audit
from tests.integration.history import write_history


async def corrupt_all_four(stores, projections, orders: list[str], customer: str) -> None:
    summaries, search = projections["order_summaries"], projections["order_search"]
    key = summaries.keys.order(orders[0])
    doc = json.loads(await stores.redis.hget(key, "doc"))
    await stores.redis.hset(key, "doc", json.dumps(doc | {"total": "0.01"}))

    found = await stores.elasticsearch.get(index=search.names.index, id=orders[1])
    await stores.elasticsearch.index(
        index=search.names.index, id=orders[1], refresh=True, document=found["_source"] | {"customer_name": "Mallory"}
    )

    tables = projections["order_analytics"].tables
    row = {
        "tenant_id": doc["tenant_id"],
        "order_id": orders[2],
        "customer_id": doc["customer_id"],
        "status": "shipped",
        "item_count": 1,
        "subtotal": "1.00",
        "discount_percent": "0",
        "discount": "0",
        "total": "1.00",
        "placed_at": doc["placed_at"],
        "version": 10**12,
    }
    await asyncio.to_thread(
        stores.clickhouse.command,
        f"INSERT INTO {tables.orders} FORMAT JSONEachRow " + json.dumps(row),
        settings={"date_time_input_format": "best_effort"},
    )

    dashboards = projections["customer_dashboards"].tables.dashboards
    async with stores.dashboards.begin() as conn:
        await conn.execute(text(f"UPDATE {dashboards} SET lifetime_value = 0 WHERE customer_id = :c"), {"c": customer})


async def test_audit_finds_one_drift_per_store_and_repair_fixes_them(
    bus, tenant, write_engine, stores, projections, project_all
):
    made = await write_history(bus, tenant)
    await project_all()
    assert await audit.audit(write_engine, stores, [tenant]) == []

    await corrupt_all_four(stores, projections, made["orders"], made["customers"][2])
    drift = await audit.audit(write_engine, stores, [tenant])
    assert {(d.projection, d.kind, d.key) for d in drift} == {
        ("order_summaries", "different", made["orders"][0]),
        ("order_search", "different", made["orders"][1]),
        ("order_analytics", "different", made["orders"][2]),
        ("customer_dashboards", "different", made["customers"][2]),
    }
    assert "Mallory" in next(d.detail for d in drift if d.projection == "order_search")

    rewritten = await audit.repair(write_engine, projections, drift)
    assert rewritten >= 4
    assert await audit.audit(write_engine, stores, [tenant]) == []

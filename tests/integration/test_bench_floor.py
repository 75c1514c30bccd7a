"""The bench's write-path floor: PlaceOrder's statements on raw asyncpg, in a scratch copy of the write schema."""

from __future__ import annotations

import random

import asyncpg

from infra.bench.floor import Floor
from tests.integration.history import write_history


async def test_the_floor_places_whole_orders_under_the_append_lock_in_a_scratch_database(
        fresh_services, bus, tenant):
    await write_history(bus, tenant)
    floor = Floor(fresh_services, tenant)
    assert "pg_advisory_xact_lock" in floor.append_sql  # the write side's own locked append
    await floor.prepare()
    try:
        run = await floor.closed_loop(4, 1.0, random.Random(1))
        assert run["errors"] == 0 and run["per_s"] > 0
        conn = await asyncpg.connect(floor.dsn)
        try:
            orders = await conn.fetchval("SELECT count(*) FROM orders")
            lines = await conn.fetchval("SELECT count(*) FROM order_items")
            events = await conn.fetch("SELECT aggregate_id, type FROM events ORDER BY position")
            owned = await conn.fetchval("SELECT count(*) FROM orders WHERE tenant_id <> $1", tenant)
        finally:
            await conn.close()
        assert orders == run["requests"] and lines == 3 * orders  # every order whole, nothing half-written
        assert len(events) == orders and {e["type"] for e in events} == {"OrderPlaced"} and owned == 0
    finally:
        await floor.drop()

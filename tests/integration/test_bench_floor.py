"""The bench's write-path floor: PlaceOrder's statements on raw asyncpg, in a scratch copy of the write schema."""

from __future__ import annotations

import asyncio
import random

import asyncpg

from infra.bench.floor import Floor
from infra.bench.locks import AppendLockSampler
from infra.bootstrap import asyncpg_dsn
from tests.integration.history import write_history
from write.event_log import APPEND_LOCK_KEY


async def test_the_floor_places_whole_orders_under_the_append_lock_in_a_scratch_database(fresh_services, bus, tenant):
    await write_history(bus, tenant)
    floor = Floor(fresh_services, tenant)
    assert "staged_events" in floor.stage_sql  # the write side's own append, locked at COMMIT
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


async def _sampled(dsn: str, seconds: float) -> dict:
    sampler = AppendLockSampler(dsn, every_s=0.002)
    sampling = asyncio.create_task(sampler.run())
    await asyncio.sleep(seconds)  # the length of the sampling window, not a wait for something to happen
    sampler.stop()
    await sampling
    return sampler.shares()


async def test_the_lock_sampler_sees_a_holder_that_waits_on_its_client(fresh_services):
    dsn = asyncpg_dsn(fresh_services.write_database_url)
    free = await _sampled(dsn, 0.3)
    holder = await asyncpg.connect(dsn)
    try:
        async with holder.transaction():
            await holder.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK_KEY)
            held = await _sampled(dsn, 0.3)
    finally:
        await holder.close()
    assert free["samples"] > 10 and free["held_percent"] == 0
    assert held["held_percent"] == 100 and held["holder_idle_percent"] == 100

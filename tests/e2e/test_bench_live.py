"""The live-path bench against a running Prism: a short load counts every order, sees it in every store, and puts a
CPU figure on it; read-your-writes reads each order back fresh on every reader."""

from __future__ import annotations

import os
import random

import aiohttp

from infra.bench import live
from infra.bench.api import Workload
from infra.bench.environment import bench_databases
from projections.registry import PROJECTIONS
from tests.e2e.conftest import headers_of


async def _seeded(http, tenant: str) -> dict:
    headers = headers_of(tenant)
    customers, products = [], []
    for n in range(3):
        made = await http.post("/customers", json={"name": f"C{n}", "email": f"c{n}@x.example"}, headers=headers)
        customers.append(made.json()["id"])
    for n in range(4):
        made = await http.post("/products", json={"name": f"Widget {n}", "price": "3.00"}, headers=headers)
        products.append(made.json()["id"])
    return {"tenants": [tenant], "customers": {tenant: customers}, "products": {tenant: products}}


async def test_a_short_load_is_costed_and_seen_in_every_store(http, server, api_tenant, fresh_services):
    work = Workload(server, await _seeded(http, api_tenant), random.Random(1))
    async with aiohttp.ClientSession(headers=headers_of(api_tenant)) as session:
        # The server runs in this process: its CPU is what the bench counts as Prism's. Each stretch (idle, then
        # loaded) spans two rounds of the console's sampling, which then nets out as the idle work it is.
        run = await live.live_run(
            session,
            server,
            work.place_order,
            10,
            2 * fresh_services.console_sample_seconds,
            os.getpid(),
            bench_databases(fresh_services),
        )
    assert run["errors"] == 0 and run["achieved_per_s"] > 0
    assert set(run["stores"]) == set(PROJECTIONS)
    assert all(store["not_visible"] == 0 for store in run["stores"].values())
    per_order = run["cost"]["per_order"]
    assert per_order["units"] == 10 * 2 * fresh_services.console_sample_seconds
    assert per_order["prism_ms"] > 0 and set(per_order["stores_ms"]) >= {"postgres", "redis"}
    assert abs(per_order["total_ms"] - per_order["prism_ms"] - per_order["stores_total_ms"]) < 0.01
    assert run["drain_after_s"] is not None


async def test_read_your_writes_reads_each_order_fresh_on_every_reader(http, server, api_tenant):
    work = Workload(server, await _seeded(http, api_tenant), random.Random(2))
    async with aiohttp.ClientSession(headers=headers_of(api_tenant)) as session:
        readers = await live.read_your_writes(session, server, work, 1.0, random.Random(3), rate=5)
    assert set(readers) == {"order_page", "search", "analytics", "dashboards", "shipping"}
    for name, row in readers.items():
        assert row["reads"] >= 1 and row["stale"] == row["failed"] == 0, name
        assert row["p99_ms"] is not None

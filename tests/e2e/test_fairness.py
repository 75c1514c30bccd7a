"""One tenant's slow analyst queries stall no one: readiness, canned analytics and read-your-writes stay fast."""

from __future__ import annotations

import asyncio
import time

from tests.conftest import SLOW_SQL, p99
from tests.e2e.test_read_your_writes import open_shop


async def test_six_stalling_analyst_queries_leave_the_other_routes_at_their_usual_speed(http, api_tenant, settings):
    shop, made = await open_shop(http, api_tenant)
    order_body = {"customer_id": made["customer"]["id"], "items": [{"product_id": made["product"]["id"],
                                                                    "quantity": 1}]}

    async def ready() -> None:
        response = await http.get("/ready")
        assert response.status_code == 200, response.text

    async def canned() -> None:
        response = await http.get("/analytics/summary", headers=shop.headers)
        assert response.status_code == 200, response.text

    async def read_your_write() -> None:
        placed = await shop.post("/orders", order_body, 201)
        await shop.get(f"/customers/{made['customer']['id']}/dashboard", placed["position"])  # asserts not stale

    probes = {"/ready": ready, "/analytics/summary": canned, "dashboard read-your-writes": read_your_write}

    async def timed_until(probe, done) -> list[float]:
        """Back-to-back calls of one probe until ``done()``; each probe has a loop of its own, as clients do."""
        timings: list[float] = []
        while not done():
            started = time.perf_counter()
            await probe()
            timings.append(time.perf_counter() - started)
        return timings

    async def measure(done) -> dict[str, list[float]]:
        found = await asyncio.gather(*(timed_until(probe, done) for probe in probes.values()))
        return dict(zip(probes, found))

    warm_until = time.monotonic() + 1
    await measure(lambda: time.monotonic() > warm_until)  # connections and caches
    idle_until = time.monotonic() + 5
    idle = await measure(lambda: time.monotonic() > idle_until)
    stalls = [asyncio.create_task(http.post("/analytics/sql", json={"sql": SLOW_SQL}, headers=shop.headers,
                                            timeout=60)) for _ in range(6)]
    loaded = await measure(lambda: all(task.done() for task in stalls))
    answers = await asyncio.gather(*stalls)

    for name in probes:
        print(f"{name}: idle p99 {p99(idle[name]) * 1000:.1f} ms ({len(idle[name])} calls), during the stall "
              f"p99 {p99(loaded[name]) * 1000:.1f} ms ({len(loaded[name])} calls)")
    statuses = sorted(answer.status_code for answer in answers)
    running = min(settings.sql_max_concurrent, settings.sql_max_concurrent_total)
    assert statuses == [422] * running + [429] * (6 - running), [a.text for a in answers]
    assert all(a.headers["Retry-After"].isdigit() for a in answers if a.status_code == 429)
    assert all("time" in a.json()["message"].lower() for a in answers if a.status_code == 422)
    for name in probes:
        assert len(loaded[name]) >= 5, (name, len(loaded[name]))
        before, during = p99(idle[name]), p99(loaded[name])
        assert during <= 2 * before + 0.05, (name, before, during)

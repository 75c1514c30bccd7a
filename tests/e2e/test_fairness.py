"""One tenant's slow analyst queries stall no one: readiness, canned analytics and read-your-writes stay fast."""

from __future__ import annotations

import asyncio
import time

from tests.conftest import SLOW_SQL, p99
from tests.e2e.test_read_your_writes import open_shop


async def test_six_stalling_analyst_queries_leave_the_other_routes_at_their_usual_speed(http, api_tenant, settings):
    shop, made = await open_shop(http, api_tenant)
    order_body = {
        "customer_id": made["customer"]["id"],
        "items": [{"product_id": made["product"]["id"], "quantity": 1}],
    }

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

    def enough(found: dict[str, list[float]]) -> bool:
        return all(len(timings) >= 5 for timings in found.values())

    async def measure(found: dict[str, list[float]], done) -> None:
        """Back-to-back calls of each probe until ``done()``; each probe has a loop of its own, as clients do."""

        async def timed(name, probe) -> None:
            while not done():
                started = time.perf_counter()
                await probe()
                found[name].append(time.perf_counter() - started)

        await asyncio.gather(*(timed(name, probe) for name, probe in probes.items()))

    async def stall() -> list[list]:
        """Rounds of six stalling queries, until every probe has been timed often enough during them (a slow
        machine fits few read-your-writes into one round)."""
        rounds = []
        while len(rounds) < 6 and not (rounds and enough(loaded)):
            rounds.append(
                await asyncio.gather(
                    *(
                        http.post("/analytics/sql", json={"sql": SLOW_SQL}, headers=shop.headers, timeout=60)
                        for _ in range(6)
                    )
                )
            )
        return rounds

    warm_until = time.monotonic() + 1
    await measure({name: [] for name in probes}, lambda: time.monotonic() > warm_until)  # connections and caches
    idle_until = time.monotonic() + 5
    idle: dict[str, list[float]] = {name: [] for name in probes}
    await measure(idle, lambda: time.monotonic() > idle_until and (enough(idle) or time.monotonic() > idle_until + 55))
    loaded: dict[str, list[float]] = {name: [] for name in probes}
    stalling = asyncio.create_task(stall())
    await measure(loaded, stalling.done)
    rounds = await stalling

    for name in probes:
        print(
            f"{name}: idle p99 {p99(idle[name]) * 1000:.1f} ms ({len(idle[name])} calls), during the stall "
            f"p99 {p99(loaded[name]) * 1000:.1f} ms ({len(loaded[name])} calls)"
        )
    running = min(settings.sql_max_concurrent, settings.sql_max_concurrent_total)
    for answers in rounds:
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [422] * running + [429] * (6 - running), [a.text for a in answers]
        assert all(a.headers["Retry-After"].isdigit() for a in answers if a.status_code == 429)
        assert all("time" in a.json()["message"].lower() for a in answers if a.status_code == 422)
    for name in probes:
        assert len(loaded[name]) >= 5, (name, len(loaded[name]))
        before, during = p99(idle[name]), p99(loaded[name])
        assert during <= 2 * before + 0.05, (name, before, during)

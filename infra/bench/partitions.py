"""``prism bench --partitions``: one host's ``prism serve`` with every projection whole (P = 1), then split into 8
(P = 8), on the same seeded log of many tenants, in one run: the live path at one offered rate (throughput, CPU per
order, visibility) and a rebuild of all four projections (seconds, CPU-seconds per event), side by side.

Each count gets a sandbox of its own, seeded the same way (same seed, same tenants' shapes), so the two differ only
in the partition count.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from infra import bootstrap, sandbox
from infra.bench import cost, load
from infra.bench.api import lag_zero, tenant_key
from infra.bench.environment import bench_databases, bench_settings
from infra.bench.live import live_run
from infra.bench.seed import Seeded, seed
from infra.processes.supervisor import serving
from infra.settings import Settings
from projections.registry import PROJECTIONS
from write.bus import CommandBus

COUNTS = (1, 8)
TENANTS = 32
#: The visibility probe's pace: ``/positions`` reads every partition's checkpoint (40 reads at P = 8, through the
#: embedded engine's owner), so the main bench's 20 ms pace would take a core from the run it measures at P = 8.
PROBE_EVERY_S = 0.1


@dataclass(frozen=True)
class PartitionPlan:
    orders: int
    customers: int
    products: int
    #: The offered PlaceOrder rate of the live run, and its length (after as long idle).
    rate: int
    seconds: float


QUICK = PartitionPlan(orders=4_000, customers=40, products=20, rate=40, seconds=15)
FULL = PartitionPlan(orders=60_000, customers=200, products=50, rate=60, seconds=30)


class Tenants:
    """Orders placed for every seeded tenant in turn, each with its own key."""

    def __init__(self, base: str, seeded: Seeded, keys: dict[str, str], rng: random.Random) -> None:
        self.base, self.seeded, self.keys, self.rng = base, seeded, keys, rng
        self._next = itertools.cycle(seeded.tenants)

    async def place_order(self, session: aiohttp.ClientSession) -> dict:
        tenant = next(self._next)
        body = {
            "customer_id": self.rng.choice(self.seeded.customers[tenant]),
            "items": [{"product_id": p, "quantity": 1} for p in self.rng.sample(self.seeded.products[tenant], 2)],
        }
        headers = {"Authorization": f"Bearer {self.keys[tenant]}"}
        return await load.call(session, "POST", f"{self.base}/orders", json=body, headers=headers)


async def compare(base: Settings, folder: Path, quick: bool, log=print) -> dict:
    plan = QUICK if quick else FULL
    results: dict = {"plan": plan.__dict__, "tenants": TENANTS, "counts": {}}
    for count in COUNTS:
        log(f"prism bench --partitions: P = {count}")
        results["counts"][str(count)] = await _one(base, folder / f"p{count}", plan, count, log)
    return results


async def _one(base: Settings, folder: Path, plan: PartitionPlan, count: int, log) -> dict:
    settings = bench_settings(base, folder).model_copy(update={"partitions": count})
    await sandbox.reset(settings, beside=True)  # each count's engine folder is new; one process opens none
    engine = bootstrap.write_engine(settings, pool_size=4)
    try:
        seeded = await seed(
            engine, CommandBus(engine), TENANTS, plan.customers, plan.products, plan.orders, lines=(2, 4)
        )
    finally:
        await engine.dispose()
    keys = {tenant: await tenant_key(settings, tenant) for tenant in seeded.tenants}
    url = f"http://{settings.api_host}:{settings.api_port}"
    operator = {"Authorization": f"Bearer {settings.operator_token}"}
    try:
        async with (
            serving(settings, folder / "serve.log") as child,
            aiohttp.ClientSession(headers=operator, timeout=aiohttp.ClientTimeout(total=60)) as session,
        ):
            databases = bench_databases(settings)
            log(f"  catching {seeded.events:,} events up from 0")
            caught_up = await _catch_up(session, url, child.pid, databases, seeded)
            log(f"  live path: {plan.seconds:.0f}s idle, then {plan.rate} orders/s over {TENANTS} tenants")
            work = Tenants(url, seeded, keys, random.Random(5))
            live = await live_run(
                session, url, work.place_order, plan.rate, plan.seconds, child.pid, databases, PROBE_EVERY_S
            )
            log("  rebuild of all four projections")
            rebuilt = await _rebuild_all(session, url, child.pid, databases)
    finally:
        await sandbox.clear(settings)
    return {"events": seeded.events, "catch_up": caught_up, "live": live, "rebuild": rebuilt}


async def _catch_up(session, url: str, pid: int, databases: list[str], seeded: Seeded) -> dict:
    """Every projection's first version caught up from 0 as ``prism serve`` starts: seconds, CPU per event."""
    async with cost.CpuSampler([pid], databases) as sampler:
        seconds = await lag_zero(session, url, 1800)
    return {"seconds": seconds, "cost": cost.per_unit(await sampler.stop(), seeded.head)}


async def _rebuild_all(session, url: str, pid: int, databases: list[str]) -> dict:
    """All four rebuilt at once, from the POST to the last switch: seconds, CPU per event of the log."""
    async with cost.CpuSampler([pid], databases) as sampler:
        started = time.perf_counter()
        wanted = {}
        for name in PROJECTIONS:
            answer = await load.call(session, "POST", f"{url}/projections/{name}/rebuild")
            wanted[name] = answer["version"]
        head = (await load.call(session, "GET", f"{url}/positions"))["head"]
        await _until_switched(session, url, wanted)
        seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 1), "events": head, "cost": cost.per_unit(await sampler.stop(), head)}


async def _until_switched(session, url: str, wanted: dict[str, int]) -> None:
    """Polls status every half second (a bench measures the rebuild's own seconds, to half a second)."""
    while True:
        if await _switched(session, url, wanted):
            return
        await asyncio.sleep(0.5)


async def _switched(session, url: str, wanted: dict[str, int]) -> bool:
    try:
        rows = await load.call(session, "GET", f"{url}/projections")
    except (load.Failed, aiohttp.ClientError):
        return False  # a store busy with the switch answers 503 for a moment
    live = {(r["projection"].split("@")[0].split("/")[0], r["version"]) for r in rows if r["state"] == "live"}
    return all((name, version) in live for name, version in wanted.items())


def _visible(figures: dict) -> str:
    p50, p99 = figures.get("p50_ms"), figures.get("p99_ms")
    return "-" if p50 is None or p99 is None else f"{p50:.0f}/{p99:.0f}"


def table(results: dict) -> str:
    """P = 1 beside P = 8."""
    rows = [("", *(f"P = {c}" for c in results["counts"]))]

    def add(label: str, pick) -> None:
        rows.append((label, *(pick(r) for r in results["counts"].values())))

    add("orders/s answered", lambda r: f"{r['live']['achieved_per_s']:.1f}")
    add("command errors", lambda r: f"{r['live']['errors']}")
    add("CPU ms per order (all)", lambda r: f"{r['live']['cost']['per_order'].get('total_ms', 0):.2f}")
    add("CPU ms per order (Prism)", lambda r: f"{r['live']['cost']['per_order'].get('prism_ms', 0):.2f}")
    add("CPU s idle (same length)", lambda r: f"{r['live']['cost']['idle_cpu_seconds']:.1f}")
    add("CPU s loaded (gross)", lambda r: f"{r['live']['cost']['loaded_cpu_seconds']:.1f}")
    for store in ("order_summaries", "customer_dashboards", "order_search", "order_analytics"):
        add(f"visible p50/p99 ms {store}", lambda r, s=store: _visible(r["live"]["stores"].get(s, {})))
    add("catch-up from 0: s", lambda r: f"{r['catch_up']['seconds']}")
    add("catch-up: CPU ms per event", lambda r: f"{r['catch_up']['cost'].get('total_ms', 0):.3f}")
    add("rebuild of all four: s", lambda r: f"{r['rebuild']['seconds']}")
    add("rebuild: CPU ms per event", lambda r: f"{r['rebuild']['cost'].get('total_ms', 0):.3f}")
    width = max(len(r[0]) for r in rows) + 2
    return "\n".join(r[0].ljust(width) + "".join(f"{c:>12}" for c in r[1:]) for r in rows)

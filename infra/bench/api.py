"""The benchmarks that go through HTTP: a ``prism serve`` child process on the bench sandbox, and load from
this process (so the two share the machine's cores, as a client on the same host would)."""

from __future__ import annotations

import asyncio
import random
import time
from contextlib import nullcontext
from pathlib import Path

import aiohttp

from infra.bench import live, load, procs
from infra.bench.cpu import CpuMeter
from infra.bench.environment import bench_databases
from infra.bench.floor import Floor
from infra.bench.http_floor import floor_server
from infra.bench.locks import AppendLockSampler
from infra.bench.readers import LATENCY_SECONDS, TYPO, WARM_SECONDS, StoreReads, pairs, side_by_side
from infra.bootstrap import asyncpg_dsn
from infra.processes.supervisor import serving
from infra.settings import Settings
from projections.registry import PROJECTIONS


class Workload:
    """Requests built from the seeded ids."""

    def __init__(self, base: str, seeded: dict, rng: random.Random) -> None:
        self.base, self.seeded, self.rng = base, seeded, rng
        self.tenant = seeded["tenants"][0]
        self.headers: dict[str, str] = {}  # the session carries the tenant's key

    async def place_order(self, session: aiohttp.ClientSession, customer: str | None = None) -> dict:
        products = self.rng.sample(self.seeded["products"][self.tenant], 3)
        body = {
            "customer_id": customer or self.rng.choice(self.seeded["customers"][self.tenant]),
            "items": [{"product_id": p, "quantity": self.rng.randint(1, 4)} for p in products],
        }
        return await load.call(session, "POST", f"{self.base}/orders", json=body, headers=self.headers)

    async def order_detail(self, session: aiohttp.ClientSession) -> dict:
        order = self.rng.choice(self.seeded["orders"][self.tenant])
        return await load.call(session, "GET", f"{self.base}/orders/{order}", headers=self.headers)

    async def search(self, session: aiohttp.ClientSession) -> dict:
        return await load.call(session, "GET", f"{self.base}/search", params={"q": TYPO}, headers=self.headers)

    async def dashboard(self, session: aiohttp.ClientSession) -> dict:
        customer = self.rng.choice(self.seeded["customers"][self.tenant])
        return await load.call(session, "GET", f"{self.base}/customers/{customer}/dashboard", headers=self.headers)

    async def analytics(self, session: aiohttp.ClientSession) -> dict:
        return await load.call(
            session,
            "GET",
            f"{self.base}/analytics/top-products",
            params={"by": "revenue", "limit": 10},
            headers=self.headers,
        )

    async def revenue(self, session: aiohttp.ClientSession) -> dict:
        return await load.call(
            session, "GET", f"{self.base}/analytics/revenue", params={"granularity": "day"}, headers=self.headers
        )


async def lag_zero(session: aiohttp.ClientSession, base: str, timeout: float) -> float | None:
    """Seconds until every store has the head it found first; None past the timeout."""
    started, target = time.monotonic(), None
    while time.monotonic() - started < timeout:
        try:  # a store that does not answer in time is a 503 (the owner of the embedded engine under a rebuild)
            body = await load.call(session, "GET", f"{base}/positions")
        except (load.Failed, aiohttp.ClientError):
            continue
        target = body["head"] if target is None else target
        if all(body["checkpoints"].get(name, 0) >= target for name in PROJECTIONS):
            return round(time.monotonic() - started, 2)
        await asyncio.sleep(0.05)
    return None


async def http_benchmarks(
    settings: Settings, plan, seeded: dict, folder: Path, log=print, profile=None, analytics_store: dict | None = None
) -> dict:
    """``analytics_store``: the analytics readers' store reads, measured before when this process cannot make them."""
    base = f"http://{settings.api_host}:{settings.api_port}"
    work = Workload(base, seeded, random.Random(11))
    result: dict = {}
    key = await tenant_key(settings, work.tenant)
    async with serving(settings, folder / "serve.log") as child:
        # Idle connections go before uvicorn's 5 s keep-alive closes them under a request.
        connector = aiohttp.TCPConnector(limit=1024, keepalive_timeout=3)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=60), headers={"Authorization": f"Bearer {key}"}
        ) as session:
            result["catch_up_before_s"] = await lag_zero(session, base, 300)
            result["memory_idle"] = procs.tree_memory(child.pid)
            reads = StoreReads(settings, seeded, work.tenant, random.Random(12))
            await reads.open(plan.analytics_clients)
            try:
                result["readers"] = await side_by_side(
                    session,
                    pairs(work, reads, plan.reader_clients, plan.analytics_clients, analytics_store),
                    plan.reader_seconds,
                    log,
                    reads,
                )
            finally:
                await reads.close()
            result["http_floor"] = await _beside_floor(session, settings, work, plan, log)
            if profile:
                await _profiled_reads(session, work, plan, child.pid, profile, log)
            result["write_path"] = []
            floor = Floor(settings, work.tenant)
            await floor.prepare()
            try:
                for clients in plan.write_clients:
                    log(
                        f"  write path: PlaceOrder's statements on raw asyncpg, then over HTTP, {clients} clients, "
                        f"{plan.write_seconds:.0f}s each"
                    )
                    floor_run = await floor.closed_loop(clients, plan.write_seconds, random.Random(clients))
                    sampler = AppendLockSampler(asyncpg_dsn(settings.write_database_url))
                    sampling = asyncio.create_task(sampler.run())
                    with profile(child.pid, f"write-{clients}") if profile else nullcontext():
                        run = await load.closed_loop(session, work.place_order, clients, plan.write_seconds)
                    sampler.stop()
                    await sampling
                    result["write_path"].append(
                        {"clients": clients, **run, "floor": floor_run, "append_lock": sampler.shares()}
                    )
                    await lag_zero(session, base, 120)
            finally:
                await floor.drop()
            databases = bench_databases(settings)
            with profile(child.pid, "live") if profile else nullcontext():
                result["visibility"] = await live.live_runs(
                    session, base, work.place_order, plan, child.pid, databases, log
                )
            log(f"  read-your-writes: {live.RYW_CLIENTS} clients beside {live.RYW_RATE}/s, {plan.live_seconds:.0f}s")
            result["read_your_writes"] = {
                "rate": live.RYW_RATE,
                "clients": live.RYW_CLIENTS,
                "readers": await live.read_your_writes(session, base, work, plan.live_seconds, random.Random(14)),
            }
            await lag_zero(session, base, 60)
            log(f"  rebuilding all in prism serve, {REBUILD_RATE} orders/s offered for {plan.rebuild_seconds:.0f}s")
            with profile(child.pid, "rebuild") if profile else nullcontext():
                result["during_rebuild"] = await _during_rebuild(session, base, work, settings, plan.rebuild_seconds)
    return result


async def _profiled_reads(session: aiohttp.ClientSession, work: Workload, plan, pid: int, profile, log) -> None:
    """Where the readers' time goes, in windows of their own after the readers' measured ones (py-spy's sampling
    takes CPU from the same cores, so the figures of a profiled window are not reported): the floor readers at their
    clients, and read-your-writes beside its load; then every store catches up before the next measured window."""
    seconds = min(plan.reader_seconds, 5.0)
    log(f"  profiling: the order page and dashboard readers, then read-your-writes, {seconds:.0f}s each")
    with profile(pid, "readers"):
        for name in FLOOR_READERS:
            await load.closed_loop(session, getattr(work, name), plan.reader_clients, seconds)
    with profile(pid, "read-your-writes"):
        await live.read_your_writes(session, work.base, work, seconds, random.Random(15))
    await lag_zero(session, work.base, 60)


#: The readers measured against the HTTP floor, which makes their store reads.
FLOOR_READERS = ("order_detail", "dashboard")


async def _beside_floor(session: aiohttp.ClientSession, settings: Settings, work: Workload, plan, log) -> dict:
    """Each floor reader and the floor's same read, one after the other, at the readers' clients; and whether the
    floor answered the same bytes."""
    result: dict = {}
    async with floor_server(settings, work.tenant) as floor_base:
        bare = Workload(floor_base, work.seeded, random.Random(13))
        for name in FLOOR_READERS:
            log(f"  readers: {name} beside the HTTP floor, 1 and {plan.reader_clients} clients, {plan.reader_seconds}s")
            same = await _same_bytes(session, work, floor_base, name)
            row: dict = {"clients": plan.reader_clients, "same_bytes": same}
            for side, request in (("prism", getattr(work, name)), ("floor", getattr(bare, name))):
                await load.closed_loop(session, request, plan.reader_clients, WARM_SECONDS)
                row[side] = {
                    "one": await load.closed_loop(session, request, 1, min(plan.reader_seconds, LATENCY_SECONDS)),
                    "many": await load.closed_loop(session, request, plan.reader_clients, plan.reader_seconds),
                }
            floor_rate = row["floor"]["many"]["per_s"]
            row["ratio"] = round(row["prism"]["many"]["per_s"] / floor_rate, 2) if floor_rate else None
            result[name] = row
    return result


async def _same_bytes(session: aiohttp.ClientSession, work: Workload, floor_base: str, name: str) -> bool:
    """The same read (same ids) on Prism and on the floor: the same body, byte for byte."""
    tenant = work.tenant
    path = {
        "order_detail": f"/orders/{work.seeded['orders'][tenant][0]}",
        "dashboard": f"/customers/{work.seeded['customers'][tenant][0]}/dashboard",
    }[name]
    bodies = []
    for base in (work.base, floor_base):
        async with session.get(f"{base}{path}", headers=work.headers) as response:
            bodies.append(await response.read())
    return bodies[0] == bodies[1]


#: Writes offered while all projections are rebuilt.
REBUILD_RATE = 100


async def _during_rebuild(
    session: aiohttp.ClientSession, base: str, work: Workload, settings: Settings, seconds: float
) -> dict:
    """All rebuilt by ``prism serve``'s workers while writes arrive: the live versions' commit-to-visible,
    and how far each rebuild got (its rate over the window, and the time the whole log would take at it).

    The rebuilds are left running: the bench ends with the serve process.
    """
    operator = {"Authorization": f"Bearer {settings.operator_token}"}
    for name in PROJECTIONS:
        await load.call(session, "POST", f"{base}/projections/{name}/rebuild", headers=operator)
    started = time.perf_counter()
    first = await _building(session, base, operator)
    run = await _visibility(session, base, work, REBUILD_RATE, seconds)
    last = await _building(session, base, operator)
    wall = time.perf_counter() - started
    head = max((h for _, h in last.values()), default=0) or await _head(session, base, operator)
    builds = {}
    for name, (checkpoint, _) in first.items():
        # A rebuild no longer listed switched in within the window: it passed the whole rest of the log at least.
        switched = name not in last
        passed = (head if switched else last[name][0]) - checkpoint
        rate = passed / wall
        builds[name] = {
            "passed": passed,
            "events_per_s": round(rate),
            "head": head,
            "switched": switched,
            "whole_log_s": round(head / rate) if rate else None,
        }
    return {**run, "rebuilds": builds, "seconds": round(wall, 1)}


async def _building(session: aiohttp.ClientSession, base: str, headers: dict) -> dict[str, tuple[int, int]]:
    """Per projection, the checkpoint of the version being built and the head."""
    rows = await load.call(session, "GET", f"{base}/projections", headers=headers)
    return {
        row["projection"].split("@", 1)[0]: (row["checkpoint"], row["head"])
        for row in rows
        if row["state"] == "rebuilding"
    }


async def _head(session: aiohttp.ClientSession, base: str, headers: dict) -> int:
    rows = await load.call(session, "GET", f"{base}/projections", headers=headers)
    return max(row["head"] for row in rows)


async def tenant_key(settings: Settings, tenant: str) -> str:
    """An API key of the seeded tenant: the bench's clients call as that tenant, as users do."""
    from infra.bootstrap import write_engine
    from write import api_keys

    engine = write_engine(settings, pool_size=1)
    try:
        _, plain = await api_keys.issue(engine, tenant, list(api_keys.TENANT_SCOPES), "bench")
    finally:
        await engine.dispose()
    return plain


async def _visibility(session: aiohttp.ClientSession, base: str, work: Workload, rate: int, seconds: float) -> dict:
    probe = load.Probe(f"{base}/positions")
    probing = asyncio.create_task(probe.run(session))
    started = time.perf_counter()
    with CpuMeter() as cpu:
        run = await load.open_loop(session, work.place_order, rate, seconds)
    sent_for = time.perf_counter() - started
    drained = await lag_zero(session, base, 30)
    probe.stop()
    await probing
    return {
        **load.open_loop_figures(run, probe, rate, sent_for, list(PROJECTIONS)),
        "drain_after_s": drained,
        "cpu_percent": cpu.shares(),
    }

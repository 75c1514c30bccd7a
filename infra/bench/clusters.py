"""``prism bench --clusters``: the replay, the readers' store reads and Prism's readers on single nodes, then on the
clusters of ``prism services up --cluster`` (a Redis Cluster, three Elasticsearch nodes with a replica each, the
dashboards read from a streaming replica), on the same seeded log, in one run, side by side.

Each form gets the same sandbox, seeded the same way (same seed, same tenants' shapes), in a process of its own (the
embedded ClickHouse opens once per process). CPU comes from ``/proc`` (this process, its children, the stores'
processes), net of the same processes' use while idle just before; wall time beside it.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import aiohttp

from infra import bootstrap, sandbox
from infra.bench import cost, load
from infra.bench.api import Workload, lag_zero, tenant_key
from infra.bench.environment import bench_databases, bench_settings
from infra.bench.readers import LATENCY_SECONDS, WARM_SECONDS, StoreRead, StoreReads, as_request
from infra.bench.replay import replay_rates
from infra.bench.seed import seed
from infra.processes.gc_tuning import tune_for_batches
from infra.processes.supervisor import serving
from infra.services import lifecycle
from infra.settings import Settings, local_clusters
from write.bus import CommandBus

FORMS = ("single", "cluster")
#: The idle stretch measured before each loaded one, whose rate is subtracted from it.
IDLE_SECONDS = 3.0


@dataclass(frozen=True)
class ClusterPlan:
    orders: int
    customers: int
    products: int
    tenants: int
    #: Each store read's closed loops (one client, then ``clients``), and a replay alone's budget per store.
    read_seconds: float
    clients: int
    alone_seconds: float


QUICK = ClusterPlan(orders=4_000, customers=50, products=20, tenants=4, read_seconds=4, clients=8, alone_seconds=10)
FULL = ClusterPlan(orders=30_000, customers=200, products=50, tenants=8, read_seconds=10, clients=16, alone_seconds=30)


def say(message: str) -> None:
    print(f"{datetime.now(UTC):%H:%M:%S} {message}", flush=True)


def form_settings(base: Settings, form: str, folder: Path) -> Settings:
    """The bench's sandbox on one form of the stores."""
    settings = bench_settings(base, folder / form)
    if form == "single":  # every store setting the clusters change, back to its single node's
        singles = {name: Settings.model_fields[name].default for name in local_clusters()}
        return settings.model_copy(update={"stores": "single", "dashboards_read_url": "", **singles})
    return settings.model_copy(update={"stores": "cluster", **local_clusters()})


def run(base: Settings, quick: bool = False, out: Path = Path("var/bench/results")) -> Path:
    plan = QUICK if quick else FULL
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = Path("var/bench") / stamp
    folder.mkdir(parents=True, exist_ok=True)
    say("prism bench --clusters: the clusters up")
    lifecycle.up(base.model_copy(update={"stores": "cluster"}))
    results: dict = {"started_at": stamp, "plan": asdict(plan), "cores": os.cpu_count()}
    for form in FORMS:
        say(f"prism bench --clusters: {form}")
        settings = form_settings(base, form, folder)
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            results[form] = pool.submit(_measure_form, settings, plan).result()
        # Prism's readers over HTTP, from prism serve: this process never opened the embedded engine, which serve's
        # owner then opens (the store process above has ended).
        results[form]["http"] = asyncio.run(_http_reads(settings, results[form].pop("seeded"), plan, folder / form))
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"clusters-{stamp}.json"
    path.write_text(json.dumps(results, indent=1))
    print(table(results))
    return path


def _measure_form(settings: Settings, plan: ClusterPlan) -> dict:
    return asyncio.run(_measure(settings, plan))


async def _measure(settings: Settings, plan: ClusterPlan) -> dict:
    tune_for_batches()
    await sandbox.reset(settings)
    engine = bootstrap.write_engine(settings)
    stores = await bootstrap.open_stores(settings)
    try:
        say(f"  seeding {plan.orders:,} orders over {plan.tenants} tenants")
        seeded = await seed(engine, CommandBus(engine), plan.tenants, plan.customers, plan.products, plan.orders)
        replay = await replay_rates(engine, stores, settings.rebuild_batch_size, plan.alone_seconds, log=say)
        reads = await _reads(settings, asdict(seeded), plan)
    finally:
        await bootstrap.close_stores(stores)
        await engine.dispose()
    return {"events": seeded.head, "replay": _replay_summary(replay), "reads": reads, "seeded": asdict(seeded)}


async def _http_reads(settings: Settings, seeded: dict, plan: ClusterPlan, folder: Path) -> dict:
    """Each reader through ``prism serve`` (the order page, the dashboard, a search), one client then ``clients``,
    with the CPU of serve's processes and the stores per read (net of idle)."""
    base = f"http://{settings.api_host}:{settings.api_port}"
    work = Workload(base, seeded, random.Random(11))
    key = await tenant_key(settings, work.tenant)
    measured: dict = {}
    try:
        async with (
            serving(settings, folder / "serve.log") as child,
            aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=60), headers={"Authorization": f"Bearer {key}"}
            ) as session,
        ):
            await lag_zero(session, base, 300)
            for name, request in (
                ("order_detail", work.order_detail),
                ("dashboard", work.dashboard),
                ("search", work.search),
            ):
                say(f"  readers over HTTP: {name}, 1 and {plan.clients} clients, {plan.read_seconds:.0f}s")
                measured[name] = await _loops(settings, session, request, plan, [child.pid])
    finally:
        await sandbox.clear(settings)
    return measured


def _replay_summary(replay: dict) -> dict:
    together = replay["together"]
    return {
        "together": {
            "seconds": together["seconds"],
            "events_per_s": together["events_per_s"],
            "cpu_ms_per_event": together["cpu"].get("total_ms"),
        },
        "alone": {name: {"events_per_s": run.get("events_per_s")} for name, run in replay["alone"].items()},
    }


async def _reads(settings: Settings, seeded: dict, plan: ClusterPlan) -> dict:
    """Each reader's own read, straight on its store (the order page's pointer and document, the dashboard's row,
    a search), one client then ``clients``, with the CPU the many clients' reads cost, each."""
    reads = StoreReads(settings, seeded, seeded["tenants"][0], random.Random(12))
    await reads.open(0)
    measured = {}
    try:
        for name, read in (
            ("order_detail", reads.order_detail),
            ("dashboard", reads.dashboard),
            ("search", reads.search),
        ):
            say(f"  reads: {name}, 1 and {plan.clients} clients, {plan.read_seconds:.0f}s")
            measured[name] = await _read_loops(settings, read, plan)
    finally:
        await reads.close()
    return measured


async def _read_loops(settings: Settings, read: StoreRead, plan: ClusterPlan) -> dict:
    return await _loops(settings, cast(Any, None), as_request(read), plan, [os.getpid()])  # no HTTP session


async def _loops(settings: Settings, session: Any, request: load.Request, plan: ClusterPlan, roots: list[int]) -> dict:
    """Warm, one client (latency), then ``clients`` (throughput) with the CPU of ``roots`` and the stores per read."""
    await load.closed_loop(session, request, plan.clients, WARM_SECONDS)  # pools opened, caches warm
    one = await load.closed_loop(session, request, 1, LATENCY_SECONDS)
    databases = bench_databases(settings)
    async with cost.CpuSampler(roots, databases) as idle_sampler:
        await asyncio.sleep(IDLE_SECONDS)  # the idle stretch itself is what is measured here
        idle = await idle_sampler.stop()
    async with cost.CpuSampler(roots, databases) as sampler:
        many = await load.closed_loop(session, request, plan.clients, plan.read_seconds)
        used = await sampler.stop()
    return {"one": one, "many": many, "cpu": cost.per_unit(cost.net_of_idle(used, idle), many["requests"])}


def table(results: dict) -> str:
    """The figures side by side: single nodes, the clusters, and the clusters' over the single nodes'."""
    single, cluster = results["single"], results["cluster"]
    lines = [f"{'':<42}{'single':>12}{'clusters':>12}{'ratio':>8}"]

    def row(label: str, a: float | None, b: float | None) -> None:
        ratio = f"{b / a:.2f}" if a and b else "-"
        lines.append(f"{label:<42}{a if a is not None else '-':>12}{b if b is not None else '-':>12}{ratio:>8}")

    row(
        "replay, all four: events/s",
        single["replay"]["together"]["events_per_s"],
        cluster["replay"]["together"]["events_per_s"],
    )
    row(
        "replay, all four: CPU ms/event",
        single["replay"]["together"]["cpu_ms_per_event"],
        cluster["replay"]["together"]["cpu_ms_per_event"],
    )
    for name in single["replay"]["alone"]:
        row(
            f"replay {name} alone: events/s",
            single["replay"]["alone"][name]["events_per_s"],
            cluster["replay"]["alone"][name]["events_per_s"],
        )
    for side, label in (("reads", "store"), ("http", "Prism")):
        for name in single[side]:
            a, b = single[side][name], cluster[side][name]
            row(f"{label} {name}: p50 ms, 1 client", a["one"]["p50_ms"], b["one"]["p50_ms"])
            row(f"{label} {name}: p99 ms, 1 client", a["one"]["p99_ms"], b["one"]["p99_ms"])
            row(f"{label} {name}: reads/s, many clients", a["many"]["per_s"], b["many"]["per_s"])
            row(f"{label} {name}: CPU ms/read", a["cpu"].get("total_ms"), b["cpu"].get("total_ms"))
    return "\n".join(lines)

"""``prism bench``: the store benchmarks in a child process (it owns the embedded ClickHouse while it runs),
then the HTTP benchmarks against ``prism serve``, then the report."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import platform
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from infra import bootstrap, sandbox
from infra.bench import report
from infra.bench.api import http_benchmarks
from infra.bench.environment import bench_settings
from infra.bench.naive import naive_rate
from infra.bench.profiles import Profiler
from infra.bench.readers import embedded_analytics
from infra.bench.replay import replay_rates
from infra.bench.seed import seed
from infra.processes.gc_tuning import tune_for_batches
from infra.settings import Settings
from write.bus import CommandBus


@dataclass(frozen=True)
class Plan:
    mode: str
    orders: int
    customers: int
    products: int
    lines: tuple[int, int]
    alone_seconds: float
    naive_events: int
    naive_seconds: float
    write_clients: tuple[int, ...]
    write_seconds: float
    #: Offered PlaceOrder rates of the live path, each measured for ``live_seconds`` after as long idle.
    loads: tuple[int, ...]
    #: Rates tried after ``loads``, each while the rate before stayed within every store's budget.
    step_up: tuple[int, ...]
    live_seconds: float
    reader_clients: int
    #: Clients of the analytics readers (their goal is set at fewer clients than the other readers').
    analytics_clients: int
    reader_seconds: float
    rebuild_seconds: float


#: ≥ 1,000,000 events and ≥ 2,500,000 order lines (3 an order on average), in one tenant.
FULL = Plan(
    "full",
    orders=834_000,
    customers=2000,
    products=200,
    lines=(2, 4),
    alone_seconds=15,
    naive_events=2000,
    naive_seconds=30,
    write_clients=(1, 16, 64),
    write_seconds=10,
    loads=(20, 50, 100, 200),
    step_up=(250, 300, 400, 500),
    live_seconds=20,
    reader_clients=64,
    analytics_clients=16,
    reader_seconds=6,
    rebuild_seconds=20,
)
QUICK = Plan(
    "quick",
    orders=10_000,
    customers=300,
    products=60,
    lines=(2, 4),
    alone_seconds=10,
    naive_events=500,
    naive_seconds=15,
    write_clients=(1, 16),
    write_seconds=4,
    loads=(20, 50, 100, 200),
    step_up=(250,),
    live_seconds=10,
    reader_clients=64,
    analytics_clients=16,
    reader_seconds=3,
    rebuild_seconds=8,
)


#: What the store phase hands the HTTP benchmarks rather than the report.
KEPT_FOR_HTTP = ("seeded", "analytics_store")


def say(message: str) -> None:
    """A progress line, stamped with the wall clock (the bench's phases are timed from these)."""
    print(f"{datetime.now(UTC):%H:%M:%S} {message}", flush=True)


def _store_phase(settings: Settings, plan: Plan) -> dict:
    return asyncio.run(_stores(settings, plan))


async def _stores(settings: Settings, plan: Plan) -> dict:
    tune_for_batches()  # its replays stand for prism serve's worker processes, which run so
    await sandbox.reset(settings)
    engine = bootstrap.write_engine(settings)
    stores = await bootstrap.open_stores(settings)
    try:
        services = await _versions(engine, stores, settings)
        say(f"  seeding {plan.orders:,} orders")
        started = time.perf_counter()
        seeded = await seed(engine, CommandBus(engine), 1, plan.customers, plan.products, plan.orders, plan.lines)
        seeding = {
            "orders": plan.orders,
            "order_lines": seeded.order_lines,
            "events": seeded.head,
            "seconds": round(time.perf_counter() - started, 1),
        }
        replay = await replay_rates(
            engine, stores, settings.rebuild_batch_size, plan.alone_seconds, log=say, settings=settings
        )
        naive = await naive_rate(settings, engine, plan.naive_events, plan.naive_seconds, log=say)
        analytics = None
        if settings.uses_chdb:
            say(
                f"  readers: the analytics store reads, 1 and {plan.analytics_clients} clients, "
                f"{plan.reader_seconds:.0f}s (prism serve will hold the embedded engine)"
            )
            analytics = await embedded_analytics(settings, asdict(seeded), plan.analytics_clients, plan.reader_seconds)
    finally:
        await bootstrap.close_stores(stores)
        await engine.dispose()
    return {
        "services": services,
        "seed": seeding,
        "replay": replay,
        "naive": naive,
        "seeded": asdict(seeded),
        "analytics_store": analytics,
    }


async def _versions(engine, stores, settings: Settings) -> dict:
    async with engine.connect() as conn:
        postgres = (await conn.exec_driver_sql("SHOW server_version")).scalar_one()
    clickhouse = await asyncio.to_thread(stores.clickhouse.command, "SELECT version()")
    return {
        "postgres": postgres,
        "redis": (await stores.redis.info("server"))["redis_version"],
        "elasticsearch": (await stores.elasticsearch.info())["version"]["number"],
        "clickhouse": f"{clickhouse} ({'chDB, embedded' if settings.uses_chdb else 'server'})",
    }


def machine() -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = next(
        (
            int(line.split()[1]) // 1024 // 1024
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        None,
    )
    return {
        "cpu": cpu,
        "cores": multiprocessing.cpu_count(),
        "memory_gib": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def run(base: Settings, quick: bool = False, out: Path = Path("var/bench/results"), profile: bool = False) -> Path:
    plan = QUICK if quick else FULL
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = Path("var/bench") / stamp
    folder.mkdir(parents=True, exist_ok=True)
    settings = bench_settings(base, folder)
    started = time.perf_counter()
    say(f"prism bench ({plan.mode}): store benchmarks")
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        stored = pool.submit(_store_phase, settings, plan).result()
    (folder / "stores.json").write_text(
        json.dumps({k: v for k, v in stored.items() if k not in KEPT_FOR_HTTP}, indent=1)
    )
    say("prism bench: HTTP benchmarks against prism serve")
    http = asyncio.run(
        http_benchmarks(
            settings,
            plan,
            stored["seeded"],
            folder,
            log=say,
            profile=Profiler(folder) if profile else None,
            analytics_store=stored["analytics_store"],
        )
    )
    shutil.rmtree(settings.chdb_path, ignore_errors=True)
    asyncio.run(sandbox.clear(settings))
    results = {
        "started_at": stamp,
        "mode": plan.mode,
        "plan": asdict(plan),
        "machine": machine(),
        "seconds": round(time.perf_counter() - started, 1),
        **{k: v for k, v in stored.items() if k not in KEPT_FOR_HTTP},
        **http,
    }
    results["goals"] = report.goals(results)
    return report.write(results, out)

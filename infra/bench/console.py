"""``prism bench --console``: the operator console's costs, with 5 projections split into 8 partitions each, beside
their references from the same run.

- Its data routes (``GET /console/api/overview``, and one version's partitions, ``/console/api/partitions/{version}``,
  a full hour of history each) through ``prism serve``: latency and CPU per request, beside ``GET /health`` (the same
  server's floor); and the overview's answer in process, its series read again and kept.
- Its first paint in Chromium (Playwright), signed in, and when the sampled data shows, beside the first paint of
  the sign-in page (static, nothing to fetch).
- One sampling round's CPU (Prism's process and the stores'), as a share of a core at the sampling interval, beside
  one ``projection_status`` alone (what ``prism status`` and ``GET /projections`` compute).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import insert, select

from infra import bootstrap, sandbox
from infra.bench import cost, load
from infra.bench.api import lag_zero
from infra.bench.environment import bench_databases, bench_settings
from infra.bench.seed import seed
from infra.console import history
from infra.ops.status import projection_status
from infra.processes.supervisor import serving
from infra.settings import Settings
from workers import versions
from write.bus import CommandBus
from write.partitions import SEPARATOR
from write.schema import console_samples

PARTITIONS = 8


@dataclass(frozen=True)
class ConsolePlan:
    orders: int
    tenants: int
    #: Each closed loop's length, the sampling rounds timed, and the page loads timed.
    seconds: float
    rounds: int
    loads: int


QUICK = ConsolePlan(orders=2_000, tenants=4, seconds=5, rounds=20, loads=5)
FULL = ConsolePlan(orders=10_000, tenants=8, seconds=15, rounds=60, loads=10)


def say(message: str) -> None:
    print(f"{datetime.now(UTC):%H:%M:%S} {message}", flush=True)


def run(base: Settings, quick: bool = False, out: Path = Path("var/bench/results")) -> Path:
    plan = QUICK if quick else FULL
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = Path("var/bench") / f"console-{stamp}"
    settings = bench_settings(base, folder).model_copy(update={"partitions": PARTITIONS})
    results = {
        "started_at": stamp,
        "plan": asdict(plan),
        "partitions": PARTITIONS,
        **asyncio.run(_measure(settings, plan, folder)),
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"console-{stamp}.json"
    path.write_text(json.dumps(results, indent=1))
    print(table(results))
    return path


async def _measure(settings: Settings, plan: ConsolePlan, folder: Path) -> dict:
    await sandbox.reset(settings)
    engine = bootstrap.write_engine(settings)
    try:
        say(f"seeding {plan.orders:,} orders over {plan.tenants} tenants")
        seeded = await seed(engine, CommandBus(engine), plan.tenants, 50, 20, plan.orders)
        base = f"http://{settings.api_host}:{settings.api_port}"
        headers = {"Authorization": f"Bearer {settings.operator_token}"}
        async with (
            serving(settings, folder / "serve.log") as child,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60), headers=headers) as session,
        ):
            say("prism serve is up: waiting for every partition to reach the head, and for a first sample")
            await lag_zero(session, base, 600)
            labels = await _first_sample(engine, settings)
            filled = await _fill_an_hour(engine, settings, labels)
            say(f"history filled to an hour: {filled:,} samples of {len(labels)} rows")
            data = await _data_route(session, base, settings, engine, plan, child.pid, labels)
            paint = await _first_paint(base, settings, plan, folder)
        say("sampling rounds, timed here, with prism serve stopped")
        sampling = await _sampling(settings, engine, plan)
    finally:
        await engine.dispose()
        await sandbox.clear(settings)
    return {"events": seeded.head, "rows": len(labels), "data_route": data, "first_paint": paint, "sampling": sampling}


async def _first_sample(engine, settings: Settings, timeout: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with engine.connect() as conn:
            last = (await conn.execute(select(console_samples).order_by(console_samples.c.at.desc()).limit(1))).first()
            if last is not None:
                rows = await conn.execute(select(console_samples.c.label).where(console_samples.c.at == last.at))
                return [r.label for r in rows]
        await asyncio.sleep(settings.console_sample_seconds / 5)
    raise RuntimeError("no console sample within a minute; see the serve log")


async def _fill_an_hour(engine, settings: Settings, labels: list[str]) -> int:
    """Samples every interval back to an hour ago, as a server up for an hour would have kept."""
    every, now = settings.console_sample_seconds, datetime.now(UTC)
    times = [now - timedelta(seconds=every * n) for n in range(1, int(settings.console_history_seconds / every))]
    rows = [
        {"at": at, "label": label, "checkpoint": 0, "head": 0, "lag_events": n % 50, "lag_seconds": (n % 50) / 10}
        for n, at in enumerate(times)
        for label in labels
    ]
    async with engine.begin() as conn:
        for start in range(0, len(rows), 5000):
            await conn.execute(insert(console_samples), rows[start : start + 5000])
    return len(times)


async def _data_route(
    session, base: str, settings: Settings, engine, plan: ConsolePlan, pid: int, labels: list[str]
) -> dict:
    """One client's closed loop on each route, with the CPU of serve's processes and the stores per request."""
    measured: dict[str, Any] = {}
    split = sorted({label.split(SEPARATOR)[0] for label in labels if SEPARATOR in label})[0]
    for name, url in (
        ("overview", f"{base}/console/api/overview"),
        ("partitions", f"{base}/console/api/partitions/{split}"),
        ("health", f"{base}/health"),
    ):

        async def request(s, url=url):
            return await load.call(s, "GET", url)

        await load.closed_loop(session, request, 1, 1.0)  # warm
        async with cost.CpuSampler([pid], bench_databases(settings)) as sampler:
            loop = await load.closed_loop(session, request, 1, plan.seconds)
            used = await sampler.stop()
        measured[name] = {**loop, "cpu": cost.per_unit(used, loop["requests"])}
        say(f"  {name}: p50 {loop['p50_ms']} ms, p99 {loop['p99_ms']} ms")
    for name, fresh in (("in_process_series_read", True), ("in_process_series_kept", False)):
        kept, direct = history.Overview(), []
        for _ in range(50):
            started = time.perf_counter()
            body = await (history.Overview() if fresh else kept).answer(engine, settings)
            direct.append(time.perf_counter() - started)
        measured[name] = load.summary(direct, sum(direct), 0)
    answer = json.loads(body)
    measured["answer_bytes"] = len(body)
    measured["status_rows"] = len(answer["status"]["projections"])
    measured["series_points"] = sum(len(s["t"]) for s in answer["series"].values())
    return measured


async def _first_paint(base: str, settings: Settings, plan: ConsolePlan, folder: Path) -> dict:
    """First contentful paint of the console (signed in) and when its data shows, then the sign-in page's; a
    screenshot of the console with one version's partitions listed and charted."""
    from playwright.async_api import async_playwright

    from infra.services.browser import FLAGS, ensure_chromium, until

    paint = "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null"
    shown = "performance.getEntriesByName('prism-console-data')[0]?.startTime ?? null"
    console, data, sign_in = [], [], []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(ensure_chromium()), args=list(FLAGS))
        page = await (await browser.new_context(base_url=base)).new_page()
        await page.goto("/console")
        await page.fill("#key", settings.operator_token)
        await page.click("button[type=submit]")
        await page.wait_for_selector("#projections tr[data-label]")
        for _ in range(plan.loads):
            await page.goto("/console")
            data.append(await until(page, shown))
            console.append(await until(page, paint))
        await page.click('#projections tr[data-partition="all"] button.link')  # one version's partitions listed
        await page.wait_for_selector("#projections tr.partition")
        await page.wait_for_selector("#partition-charts .chart[data-points]:not([data-points='0'])")  # and charted
        await page.screenshot(path=str(folder / "console.png"), full_page=True)
        anonymous = await (await browser.new_context(base_url=base)).new_page()
        for _ in range(plan.loads):
            await anonymous.goto("/console")
            sign_in.append(await until(anonymous, paint))
        await browser.close()
    return {
        "console_fcp_ms": _spread(console),
        "console_data_shown_ms": _spread(data),
        "sign_in_fcp_ms": _spread(sign_in),
    }


def _spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 1), "max": round(max(values), 1), "n": len(values)}


async def _sampling(settings: Settings, engine, plan: ConsolePlan) -> dict:
    """``plan.rounds`` sampling rounds back to back (the interval's wait left out), then as many status reads
    alone; CPU of this process and the stores per round."""
    stores = await bootstrap.open_stores(settings)
    hurried = settings.model_copy(update={"console_sample_seconds": 0.001})
    try:
        shown = await bootstrap.active_projections(engine, stores, (versions.LIVE, versions.NEXT, versions.PREVIOUS))
        measured: dict[str, Any] = {}
        for name, once in (
            ("round", lambda: history.sample(engine, stores, hurried)),
            ("status_alone", lambda: projection_status(engine, shown)),
        ):
            await once()  # warm
            async with cost.CpuSampler([os.getpid()], bench_databases(settings)) as sampler:
                started = time.perf_counter()
                for _ in range(plan.rounds):
                    await once()
                wall = time.perf_counter() - started
                used = await sampler.stop()
            per = cost.per_unit(used, plan.rounds)
            measured[name] = {"wall_ms": round(1000 * wall / plan.rounds, 2), "cpu": per}
        every = settings.console_sample_seconds
        measured["every_seconds"] = every
        measured["core_share_percent"] = round(measured["round"]["cpu"]["total_ms"] / (10 * every), 3)
    finally:
        await bootstrap.close_stores(stores)
    return measured


def table(results: dict) -> str:
    data, paint, sampling = results["data_route"], results["first_paint"], results["sampling"]
    overview, partitions, health = data["overview"], data["partitions"], data["health"]
    lines = [
        f"console bench {results['started_at']}: {data['status_rows']} status rows (5 projections, "
        f"{PARTITIONS} partitions each; the embedded ClickHouse's stays whole), "
        f"{data['series_points']:,} chart points, {data['answer_bytes']:,} bytes",
        f"{'':<44}{'p50 ms':>9}{'p99 ms':>9}{'per s':>9}{'CPU ms/req':>12}",
    ]
    for name, row in (
        ("GET /console/api/overview", overview),
        ("GET /console/api/partitions/{version}", partitions),
        ("GET /health (same server)", health),
    ):
        lines.append(
            f"{name:<44}{row['p50_ms']:>9}{row['p99_ms']:>9}{row['per_s']:>9}{row['cpu'].get('total_ms', '-'):>12}"
        )
    for name, label in (
        ("in_process_series_read", "its answer in process, series read"),
        ("in_process_series_kept", "its answer in process, series kept"),
    ):
        q = data[name]
        lines.append(f"{label:<44}{q['p50_ms']:>9}{q['p99_ms']:>9}")
    fcp, shown, sign_in = paint["console_fcp_ms"], paint["console_data_shown_ms"], paint["sign_in_fcp_ms"]
    round_cpu = sampling["round"]["cpu"]
    lines += [
        "",
        f"first paint, console (signed in): {fcp['median']} ms (max {fcp['max']}); "
        f"its data shown: {shown['median']} ms (max {shown['max']})",
        f"first paint, sign-in page: {sign_in['median']} ms (max {sign_in['max']})",
        "",
        f"one sampling round: {sampling['round']['wall_ms']} ms wall, {round_cpu.get('total_ms')} ms CPU "
        f"(Prism {round_cpu.get('prism_ms')}, stores {round_cpu.get('stores_total_ms')}); "
        f"every {sampling['every_seconds']} s: {sampling['core_share_percent']}% of a core",
        f"projection_status alone: {sampling['status_alone']['wall_ms']} ms wall, "
        f"{sampling['status_alone']['cpu'].get('total_ms')} ms CPU",
    ]
    return "\n".join(lines)

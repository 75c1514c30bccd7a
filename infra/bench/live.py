"""The live path at offered rates: CPU per order end to end, net of idle; commit-to-visible per store; the highest
rate within each store's budget; and read-your-writes on every reader.

Each rate first measures the same processes idle for as long as the load is offered,
the checkpoint probe running in both stretches at a fixed pace (so that its own reads net out), then
offers the load and counts CPU from its start until every store's checkpoint has the
last order.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable, Mapping

import aiohttp

from infra.bench import cost, load
from infra.bench.cpu import CpuMeter
from projections.registry import PROJECTIONS

#: Commit-to-visible p99 each projection's readers can live with, ms.
VISIBLE_BUDGETS_MS = {
    "order_summaries": 150,
    "customer_dashboards": 150,
    "shipping_dashboard": 150,
    "order_search": 1200,
    "order_analytics": 1500,
}
#: The longest the stores get to show the last order of a load before the run counts it as not visible.
DRAIN_SECONDS = 30.0
#: The probe's pace: fixed, so that its own cost is the same idle and loaded and nets out (it rounds each
#: commit-to-visible figure up by at most this much).
PROBE_EVERY_S = 0.02
#: Read-your-writes: its clients, the least time between two of one client's orders, and the rate beside them.
RYW_CLIENTS, RYW_PERIOD_S, RYW_RATE = 4, 0.5, 100


def within_budgets(run: dict, budgets: Mapping[str, float] = VISIBLE_BUDGETS_MS) -> bool:
    """The load was met (every command answered, 95 % of the rate) and every store showed every write within its
    p99 budget."""
    return (
        run["achieved_per_s"] >= 0.95 * run["offered_per_s"]
        and not run["errors"]
        and all(
            (s := run["stores"].get(name)) is not None
            and s["not_visible"] == 0
            and s["p99_ms"] is not None
            and s["p99_ms"] <= budget
            for name, budget in budgets.items()
        )
    )


def highest_within(runs: Iterable[dict], budgets: Mapping[str, float] = VISIBLE_BUDGETS_MS) -> int | None:
    """The highest offered rate of those run that was within budgets (None if none was)."""
    met = [run["offered_per_s"] for run in runs if within_budgets(run, budgets)]
    return max(met, default=None)


async def live_runs(
    session: aiohttp.ClientSession,
    base: str,
    place: load.Request,
    plan,
    serve_pid: int,
    databases: list[str],
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Every rate of ``plan.loads``, then each of ``plan.step_up`` while the rate before stayed within budgets."""
    runs: list[dict] = []
    for rate in (*plan.loads, *plan.step_up):
        if rate not in plan.loads and not within_budgets(runs[-1]):
            break
        log(f"  live path: {plan.live_seconds:.0f}s idle, then {rate} orders/s offered for {plan.live_seconds:.0f}s")
        runs.append(await live_run(session, base, place, rate, plan.live_seconds, serve_pid, databases))
    return runs


async def live_run(
    session: aiohttp.ClientSession,
    base: str,
    place: load.Request,
    rate: int,
    seconds: float,
    serve_pid: int,
    databases: list[str],
    probe_every: float = PROBE_EVERY_S,
) -> dict:
    probe = load.Probe(f"{base}/positions", every=probe_every)
    probing = asyncio.create_task(probe.run(session))
    try:
        async with cost.CpuSampler([serve_pid], databases) as idle_meter:
            await asyncio.sleep(seconds)  # the idle stretch is a measurement of its own length, not a wait for work
        idle = await idle_meter.stop()
        sampler = cost.CpuSampler([serve_pid], databases)
        async with sampler:
            started = time.perf_counter()
            with CpuMeter() as shares:
                run = await load.open_loop(session, place, rate, seconds)
            sent_for = time.perf_counter() - started
            last = max((s.position for s in run.sent), default=0)
            drained = await _all_reached(probe, last, DRAIN_SECONDS)
            loaded = await sampler.stop()
    finally:
        probe.stop()
        await probing
    net = cost.net_of_idle(loaded, idle)
    return {
        **load.open_loop_figures(run, probe, rate, sent_for, list(PROJECTIONS)),
        "drain_after_s": None if drained is None else round(drained - started - sent_for, 2),
        "cpu_percent": shares.shares(),
        "cost": {
            "per_order": cost.per_unit(net, len(run.sent)),
            "idle_cpu_seconds": round(sum(idle.prism.values()) + sum(idle.stores.values()), 3),
            "idle_seconds": idle.seconds,
            "loaded_cpu_seconds": round(sum(loaded.prism.values()) + sum(loaded.stores.values()), 3),
        },
    }


async def _all_reached(probe: load.Probe, position: int, timeout: float) -> float | None:
    """When the probe first read every store's checkpoint at or past ``position`` (perf_counter); None past the
    timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe.readings and _reached(probe.readings[-1][1], position):
            return next(at for at, checkpoints in probe.readings if _reached(checkpoints, position))
        await asyncio.sleep(0.01)  # the probe reads back to back; this only lets it run
    return None


def _reached(checkpoints: dict[str, int], position: int) -> bool:
    return all(checkpoints.get(name, 0) >= position for name in PROJECTIONS)


def ryw_reads(order_id: str, customer_id: str) -> dict[str, tuple[str, dict]]:
    """Per reader, a read that shows the order (or its effect): path and query."""
    return {
        "order_page": (f"/orders/{order_id}", {}),
        "search": ("/search", {"customer_id": customer_id, "sort": "newest"}),
        "analytics": ("/analytics/top-products", {"by": "revenue", "limit": 10}),
        "dashboards": (f"/customers/{customer_id}/dashboard", {}),
        "shipping": ("/shipping/summary", {}),
    }


async def read_your_writes(
    session: aiohttp.ClientSession, base: str, work, seconds: float, rng: random.Random, rate: int = RYW_RATE
) -> dict[str, dict]:
    """``RYW_CLIENTS`` clients, beside an open loop of ``rate`` orders/s: each places an order every
    ``RYW_PERIOD_S``, then reads it on every reader at once with ``min_position`` = the command's position (without
    waiting for those reads to place its next). Per reader: the read's latency from the command's answer (a stale
    answer's too: it waited as long as a reader waits), the reads answered stale, and those that failed."""
    took: dict[str, list[float]] = {name: [] for name in ryw_reads("", "")}
    stale, failed = dict.fromkeys(took, 0), dict.fromkeys(took, 0)
    first_failure: dict[str, str] = {}
    deadline = time.monotonic() + seconds
    reading: list[asyncio.Task] = []

    async def read(name: str, path: str, params: dict, position: int, since: float) -> None:
        query = params | {"min_position": position}
        try:
            async with session.get(f"{base}{path}", params=query, headers=work.headers) as response:
                body = await response.read()
                status, fresh = response.status, response.headers.get("X-Prism-Stale") == "false"
        except (TimeoutError, aiohttp.ClientError) as error:
            status, fresh, body = 0, False, repr(error).encode()
        if status != 200:
            failed[name] += 1
            first_failure.setdefault(name, f"{status}: {body[:200].decode(errors='replace')}")
            return
        took[name].append(time.perf_counter() - since)
        stale[name] += not fresh

    async def client() -> None:
        while time.monotonic() < deadline:
            began = time.monotonic()
            customer = rng.choice(work.seeded["customers"][work.tenant])
            try:
                made = await work.place_order(session, customer)
            except (TimeoutError, load.Failed, aiohttp.ClientError):
                continue
            answered = time.perf_counter()
            reading.extend(
                asyncio.create_task(read(name, path, params, made["position"], answered))
                for name, (path, params) in ryw_reads(made["id"], customer).items()
            )
            await asyncio.sleep(max(0.0, began + RYW_PERIOD_S - time.monotonic()))  # pacing, not synchronization

    background = asyncio.create_task(load.open_loop(session, work.place_order, rate, seconds))
    await asyncio.gather(*(client() for _ in range(RYW_CLIENTS)))
    await asyncio.gather(*reading)
    await background
    return {
        name: {
            "reads": len(took[name]),
            "stale": stale[name],
            "failed": failed[name],
            **{f"p{q}_ms": _ms(load.percentile(took[name], q)) for q in (50, 99)},
        }
        | ({"first_failure": first_failure[name]} if name in first_failure else {})
        for name in took
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(1000 * seconds, 1)

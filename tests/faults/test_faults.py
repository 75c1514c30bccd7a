"""Fault drills under a steady workload: after each, lag returns to 0 within 30 s and every store agrees.

``prism serve`` runs as a child process and supervises its own: API processes, a
worker per store and the embedded ClickHouse's owner (the relay runs in the supervisor;
a store's builder only during a rebuild). Each kind of child is killed alone with SIGKILL
while commands flow (an API process mid-command, a worker mid-batch) and the supervisor
must start it again; then the supervisor itself, relay included, is killed, and none of
its children may outlive it. The stores are the real local services.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from infra import services
from infra.processes.supervisor import running_processes
from infra.sandbox import free_port
from projections.registry import PROJECTIONS
from tests.conftest import OPERATOR, eventually

pytestmark = pytest.mark.faults
RECOVERY_SECONDS = 30


class Serve:
    """``prism serve`` as a child process with its own log, and the processes it runs."""

    def __init__(self, settings, log: Path) -> None:
        self.settings, self.log = settings, log
        self.process: subprocess.Popen | None = None
        self.base = f"http://{settings.api_host}:{settings.api_port}"

    async def start(self) -> None:
        out = self.log.open("a")
        self.process = subprocess.Popen(  # noqa: ASYNC220  # starting a process does not wait for it
            [sys.executable, "-m", "infra.cli", "serve"],
            env=self.settings.child_environment(),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).parents[2],
        )
        async with httpx.AsyncClient(base_url=self.base, timeout=2) as client:

            async def ready() -> bool:
                assert self.process.poll() is None, self.log.read_text()[-3000:]
                try:
                    return (await client.get("/ready")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, 60, "prism serve ready (every store and the ClickHouse owner answer)")

    def children(self) -> dict[int, str]:
        """pid -> role (``api``, ``worker elasticsearch live``, ``clickhouse-owner``) of serve's children."""
        return children_of(self.process.pid)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()


def children_of(parent: int) -> dict[int, str]:
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"infra.cli" in args:
            role = [a.decode() for a in args[args.index(b"infra.cli") + 1 :] if a]
            found[int(entry.name)] = " ".join(
                r for r in role if not r.startswith("-") and not r.isdigit() and not r.startswith("/")
            )
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Workload:
    """Places and confirms orders at a steady pace; failures during a fault are counted, not fatal."""

    def __init__(self, base: str, tenant: str) -> None:
        self.base, self.tenant = base, tenant
        self.headers: dict[str, str] = {}
        self.placed = self.failed = 0
        self.running = asyncio.Event()
        self.running.set()
        self.task: asyncio.Task | None = None

    async def open(self, client: httpx.AsyncClient) -> None:
        registered = await client.post("/tenants", json={"id": self.tenant, "name": "Faults"}, headers=OPERATOR)
        self.headers = {"Authorization": f"Bearer {registered.json()['key']['key']}"}
        self.customers = [
            (
                await client.post(
                    "/customers", json={"name": f"Ana {n}", "email": f"ana{n}@f.io"}, headers=self.headers
                )
            ).json()["id"]
            for n in range(5)
        ]
        self.products = [
            (await client.post("/products", json={"name": f"Lamp {n}", "price": "3.50"}, headers=self.headers)).json()[
                "id"
            ]
            for n in range(5)
        ]

    async def run(self) -> None:
        async with httpx.AsyncClient(base_url=self.base, timeout=5) as client:
            n = 0
            while True:
                await self.running.wait()
                n += 1
                try:
                    await self._one(client, n)
                except (httpx.TransportError, KeyError, ValueError):
                    self.failed += 1
                await asyncio.sleep(0.05)  # pacing of the workload (~15 commands/s), not synchronization

    async def _one(self, client: httpx.AsyncClient, n: int) -> None:
        body = {"customer_id": self.customers[n % 5], "items": [{"product_id": self.products[n % 5], "quantity": 2}]}
        placed = await client.post("/orders", json=body, headers=self.headers)
        if placed.status_code != 201:
            self.failed += 1
            return
        self.placed += 1
        if n % 2:
            await client.post(
                f"/orders/{placed.json()['id']}/confirm", json={"expected_version": 1}, headers=self.headers
            )

    async def more(self, count: int, timeout: float = 60) -> None:
        """Wait until ``count`` more orders went through."""
        target = self.placed + count

        async def placed() -> bool:
            return self.placed >= target

        await eventually(placed, timeout, f"{count} more orders placed by the workload")


async def lag_zero_within(base: str, seconds: float) -> float:
    """Seconds until every running version has applied the whole log (at most ``seconds``)."""
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:

        async def caught_up() -> bool:
            try:
                answer = await client.get("/projections", headers=OPERATOR)
            except httpx.TransportError:
                return False
            if answer.status_code != 200:  # 503 while the ClickHouse owner, which answers it, starts again
                return False
            rows = answer.json()
            return all(r["lag_events"] == 0 for r in rows if r["state"] != "previous")

        await eventually(caught_up, seconds, "lag 0 in every running version")
    return time.monotonic() - started


async def drift(base: str, tenant: str) -> list:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        return (await client.get("/audit", params={"tenant": tenant}, headers=OPERATOR)).json()["drift"]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def serve(fresh_services, tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults")
    settings = fresh_services.model_copy(
        update={"chdb_path": folder / "chdb", "api_port": free_port(), "relay_poll_seconds": 0.5, "api_processes": 2}
    )
    running = Serve(settings, folder / "serve.log")
    await running.start()
    yield running
    running.stop()


@pytest.mark.timeout(900)  # ten drills; Elasticsearch alone takes up to two minutes to start again under load
async def test_faults_under_load_recover_with_no_drift(serve, fresh_services):
    settings = serve.settings
    workload = Workload(serve.base, f"faults-{uuid.uuid4().hex[:6]}")
    async with httpx.AsyncClient(base_url=serve.base, timeout=10) as client:
        await workload.open(client)
    workload.task = asyncio.create_task(workload.run())
    started = serve.children()
    # A worker per store; the embedded engine's owner runs its projections itself, and no builder runs idle.
    workers = [f"worker {store} live" for store in {cls.store for cls in PROJECTIONS.values()} - {"clickhouse"}]
    assert sorted(started.values()) == sorted(["api", "api", "clickhouse-owner", *workers]), started
    status = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "infra.cli", "status"],
        env=settings.child_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    listed = {
        int(line.split()[1]): line.split()[0]
        for line in status.stdout.splitlines()
        if line.split()[:1]
        and line.split()[0] in {p["name"] for p in running_processes(settings)}
        and line.split()[1].isdigit()  # an idle builder has no pid
    }
    assert set(listed) == set(started) and "worker-elasticsearch" in listed.values(), status.stdout + status.stderr
    assert f"serve (relay) {serve.process.pid} " in " ".join(status.stdout.split()), status.stdout
    assert "builder-elasticsearch - idle" in " ".join(status.stdout.split()), status.stdout

    def kill_child(role: str):
        async def inject() -> None:
            victim = next(pid for pid, r in serve.children().items() if r == role)
            os.kill(victim, signal.SIGKILL)

            async def replaced() -> bool:
                now, listed = serve.children(), running_processes(settings) or []
                return (
                    victim not in now
                    and sorted(now.values()) == sorted(started.values())
                    and {p["pid"] for p in listed if p["pid"] is not None} == set(now)
                    and any(p["restarts"] for p in listed)
                )

            await eventually(replaced, 30, f"the supervisor starting {role} again")

        return inject

    async def kill_supervisor() -> None:
        orphans = serve.children()
        serve.kill()

        async def none_left() -> bool:
            return not any(alive(pid) for pid in orphans)

        await eventually(none_left, 30, "no child of the killed supervisor left")
        await serve.start()

    async def elasticsearch_away() -> None:
        await asyncio.to_thread(services.stop_service, settings, "elasticsearch")
        await asyncio.sleep(20)  # the outage itself, with commands flowing
        workload.running.clear()  # a JVM start on two cores busy with the workload took over two minutes
        await asyncio.to_thread(services.up, settings)
        workload.running.set()

    async def restart(name: str) -> None:
        if name == "redis":
            admin = Redis.from_url(settings.redis_url)
            await admin.save()  # keep what the developer's other Redis databases hold
            await admin.aclose()
        await asyncio.to_thread(services.stop_service, settings, name)
        await asyncio.to_thread(services.up, settings)

    async def flush_queues() -> None:
        broker = Redis.from_url(settings.broker_url)
        await broker.flushdb()
        await broker.aclose()

    drills = [
        ("kill -9 of one API process mid-command", kill_child("api")),
        *[
            (f"kill -9 of the {store} worker mid-batch", kill_child(f"worker {store} live"))
            for store in ("redis", "elasticsearch", "dashboards")
        ],
        ("kill -9 of the ClickHouse owner", kill_child("clickhouse-owner")),
        ("kill -9 of prism serve itself (and its relay)", kill_supervisor),
        ("Elasticsearch stopped for 20 s", elasticsearch_away),
        ("Redis restarted", lambda: restart("redis")),
        ("Postgres (write and dashboards) restarted", lambda: restart("postgres")),
        ("Dramatiq queues flushed", flush_queues),
    ]
    report = []
    try:
        for name, inject in drills:
            await workload.more(20)
            injected = time.monotonic()
            await inject()
            recovered = time.monotonic()
            await workload.more(20)
            workload.running.clear()
            lag_seconds = await lag_zero_within(serve.base, RECOVERY_SECONDS)
            found = await drift(serve.base, workload.tenant)
            report.append(
                (
                    name,
                    round(recovered - injected, 1),
                    round(time.monotonic() - recovered, 1),
                    round(lag_seconds, 1),
                    len(found),
                )
            )
            assert found == [], (name, found[:5])
            workload.running.set()
        last = serve.children()
        serve.stop()  # SIGINT, as Ctrl-C: the supervisor stops every child before it exits

        async def none_left() -> bool:
            return not any(alive(pid) for pid in last)

        assert serve.process.returncode == 0, serve.log.read_text()[-3000:]
        await eventually(none_left, 5, "no child left after SIGINT")
        assert running_processes(settings) is None
    finally:
        workload.task.cancel()
        print("\nfault drill                                        back s  back->lag0 s  final wait s  drift")
        for name, back, total, lag, n in report:
            print(f"{name:<50}{back:>7}{total:>14}{lag:>14}{n:>7}")
        print(f"orders placed {workload.placed}, commands refused or lost in faults {workload.failed}")

"""Fault drills under a steady workload: after each, lag returns to 0 within 30 s and every store agrees.

``prism serve`` runs as a child process with the API and the workers together (the
embedded chDB engine allows one process), so killing it with SIGKILL kills the API
mid-command and a worker mid-batch at once; ``prism relay`` runs as a process of its
own and is killed alone. The stores are the real local services.
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
from infra.sandbox import free_port
from tests.conftest import OPERATOR, eventually

pytestmark = pytest.mark.faults
RECOVERY_SECONDS = 30


def environment(settings) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PRISM_")} | settings.as_environment()


class Serve:
    """A ``prism`` command (``serve`` by default) as a child process with its own log."""

    def __init__(self, settings, log: Path, command: str = "serve") -> None:
        self.settings, self.log, self.command = settings, log, command
        self.process: subprocess.Popen | None = None
        self.base = f"http://{settings.api_host}:{settings.api_port}"

    async def start(self) -> None:
        out = self.log.open("a")
        self.process = subprocess.Popen([sys.executable, "-m", "infra.cli", self.command],
                                        env=environment(self.settings), stdout=out, stderr=subprocess.STDOUT,
                                        cwd=Path(__file__).parents[2])
        if self.command != "serve":
            return  # no HTTP to wait on: the drill's lag check shows whether it works
        async with httpx.AsyncClient(base_url=self.base, timeout=2) as client:
            async def answering() -> bool:
                assert self.process.poll() is None, self.log.read_text()[-3000:]
                try:
                    return (await client.get("/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(answering, 60, "prism serve answering /health")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


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
        self.customers = [(await client.post("/customers", json={"name": f"Ana {n}", "email": f"ana{n}@f.io"},
                                             headers=self.headers)).json()["id"] for n in range(5)]
        self.products = [(await client.post("/products", json={"name": f"Lamp {n}", "price": "3.50"},
                                            headers=self.headers)).json()["id"] for n in range(5)]

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
            await client.post(f"/orders/{placed.json()['id']}/confirm", json={"expected_version": 1},
                              headers=self.headers)

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
                rows = (await client.get("/projections", headers=OPERATOR)).json()
            except (httpx.TransportError, ValueError):
                return False
            return all(r["lag_events"] == 0 for r in rows if r["state"] != "previous")

        await eventually(caught_up, seconds, "lag 0 in every running version")
    return time.monotonic() - started


async def drift(base: str, tenant: str) -> list:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        return (await client.get("/audit", params={"tenant": tenant}, headers=OPERATOR)).json()["drift"]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def serve(fresh_services, tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults")
    settings = fresh_services.model_copy(update={"chdb_path": folder / "chdb", "api_port": free_port(),
                                                 "relay_poll_seconds": 0.5, "serve_relay": False})
    running, relay = Serve(settings, folder / "serve.log"), Serve(settings, folder / "relay.log", "relay")
    await running.start()
    await relay.start()
    running.relay = relay
    yield running
    relay.stop()
    running.stop()


async def test_faults_under_load_recover_with_no_drift(serve, fresh_services):
    settings = serve.settings
    workload = Workload(serve.base, f"faults-{uuid.uuid4().hex[:6]}")
    async with httpx.AsyncClient(base_url=serve.base, timeout=10) as client:
        await workload.open(client)
    workload.task = asyncio.create_task(workload.run())

    async def kill_serve() -> None:
        serve.kill()
        await serve.start()

    async def kill_relay() -> None:
        serve.relay.kill()
        await workload.more(10)  # commands still commit while no relay tells the workers
        await serve.relay.start()

    async def elasticsearch_away() -> None:
        await asyncio.to_thread(services.stop_service, settings, "elasticsearch")
        await asyncio.sleep(20)  # the outage itself
        await asyncio.to_thread(services.up, settings)

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

    drills = [("kill -9 of serve (API, worker) mid-batch", kill_serve),
              ("kill -9 of the relay process", kill_relay),
              ("Elasticsearch stopped for 20 s", elasticsearch_away),
              ("Redis restarted", lambda: restart("redis")),
              ("Postgres (write and dashboards) restarted", lambda: restart("postgres")),
              ("Dramatiq queues flushed", flush_queues)]
    report = []
    try:
        for name, inject in drills:
            await workload.more(20)
            await inject()
            recovered = time.monotonic()
            await workload.more(20)
            workload.running.clear()
            lag_seconds = await lag_zero_within(serve.base, RECOVERY_SECONDS)
            found = await drift(serve.base, workload.tenant)
            report.append((name, round(time.monotonic() - recovered, 1), round(lag_seconds, 1), len(found)))
            assert found == [], (name, found[:5])
            workload.running.set()
    finally:
        workload.task.cancel()
        print("\nfault drill                                   recovered->lag0 s  final wait s  drift")
        for name, total, lag, n in report:
            print(f"{name:<46}{total:>18}{lag:>14}{n:>7}")
        print(f"orders placed {workload.placed}, commands refused or lost in faults {workload.failed}")

"""Each read store down, then hung: its readers answer 503 with Retry-After within the deadline, the others 200.

``prism serve`` runs as a child process with ``PRISM_STORE_TIMEOUT_SECONDS=2``. Each store is
made unavailable in turn, first stopped (connections refused), then hung with SIGSTOP (connections
open, nothing answers, the case a client without a deadline waits on forever). Meanwhile every
reader is asked once: the failing store's reader must answer 503 with ``Retry-After`` and the
common error body within the deadline and a margin, every other reader 200; nothing may answer
500 or print a traceback in serve's log. After the store is back, every reader answers 200 again.

The dashboards live on a Postgres cluster of their own, started here with Prism's service scripts
on another port and data folder: stopping the shared one would stop the write model and the API
keys too. Elasticsearch is stopped and started again with the service scripts (a JVM start takes
a minute or two here). The embedded ClickHouse lives in serve's ``clickhouse-owner`` process: "down"
is that process killed while the supervisor, stopped with SIGSTOP, cannot start it again yet;
"hung" is the owner stopped with SIGSTOP.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from infra import services
from infra.sandbox import free_port, sibling
from infra.services import lifecycle
from infra.services.elasticsearch_server import Elasticsearch
from infra.services.postgres import Postgres
from infra.services.redis_server import Redis as RedisServer
from tests.conftest import OPERATOR, SLOT, eventually
from tests.faults.test_faults import Serve

pytestmark = pytest.mark.faults
STORE_TIMEOUT = 2.0
#: What a failing reader may take: two deadlines (Postgres pings a kept connection, then opens a new one; the
#: embedded engine's forwarding adds the reader's wait for its position), and a margin for two busy cores.
ANSWER_WITHIN = 2 * STORE_TIMEOUT + 2.5
#: How long the stores and readers get to answer 200 again after a store is back.
BACK_WITHIN = 60


class Readers:
    """One reader route per store, for a tenant with one placed order."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.headers: dict[str, str] = {}
        self.paths: dict[str, str] = {}

    async def open(self) -> None:
        async with httpx.AsyncClient(base_url=self.base, timeout=10) as client:
            tenant = f"outage{uuid.uuid4().hex[:6]}"
            made = await client.post("/tenants", json={"id": tenant, "name": "Outages"}, headers=OPERATOR)
            self.headers = {"Authorization": f"Bearer {made.json()['key']['key']}"}
            customer = (await client.post("/customers", json={"name": "Ana", "email": "ana@o.io"}, **self._h)).json()
            product = (await client.post("/products", json={"name": "Lamp", "price": "3.50"}, **self._h)).json()
            order = await client.post(
                "/orders",
                json={"customer_id": customer["id"], "items": [{"product_id": product["id"], "quantity": 2}]},
                **self._h,
            )
        self.paths = {
            "redis": f"/orders/{order.json()['id']}",
            "elasticsearch": "/search?q=Lamp",
            "dashboards": f"/customers/{customer['id']}/dashboard",
            "clickhouse": "/analytics/summary",
        }
        await self.all_answer(200, BACK_WITHIN, "every reader answering 200 with the order projected")

    @property
    def _h(self) -> dict[str, dict[str, str]]:
        return {"headers": self.headers}

    async def ask(self) -> dict[str, tuple[int, float, httpx.Response | None]]:
        """Every reader at once: status, seconds taken, answer (status 0: no answer within 30 s)."""

        async def one(client: httpx.AsyncClient, path: str) -> tuple[int, float, httpx.Response | None]:
            started = time.monotonic()
            try:
                answer = await client.get(path, headers=self.headers)
            except httpx.TimeoutException:
                return 0, time.monotonic() - started, None
            return answer.status_code, time.monotonic() - started, answer

        async with httpx.AsyncClient(base_url=self.base, timeout=30) as client:
            answers = await asyncio.gather(*(one(client, path) for path in self.paths.values()))
        return dict(zip(self.paths, answers, strict=True))

    async def all_answer(self, status: int, within: float, what: str) -> None:
        async def answered() -> bool:
            return all(s == status and r is not None for s, _, r in (await self.ask()).values())

        await eventually(answered, within, what)


def family(pid: int) -> list[int]:
    """A process and its children (a Postgres cluster: the postmaster and its backends)."""
    found = [pid]
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def dashboards_cluster(fresh_services) -> AsyncIterator[Postgres]:
    """A Postgres cluster of its own for the dashboards, under the services folder, removed after."""
    port = free_port()
    url = sibling(fresh_services.dashboards_database_url, f"prism_outage{SLOT}_dashboards")
    url = url.replace(url.split("@", 1)[1].split("/", 1)[0], f"127.0.0.1:{port}")
    own = fresh_services.model_copy(
        update={
            "services_dir": fresh_services.services_dir / f"outage-slot{SLOT}",
            "write_database_url": url,
            "dashboards_database_url": url,
        }
    )
    lifecycle._layout(own)
    cluster = Postgres(own)
    await asyncio.to_thread(lifecycle._up_one, cluster)
    yield cluster
    await asyncio.to_thread(lifecycle._down_one, cluster)
    shutil.rmtree(own.services_dir, ignore_errors=True)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def serve(fresh_services, dashboards_cluster, tmp_path_factory) -> AsyncIterator[Serve]:
    folder = tmp_path_factory.mktemp("outages")
    settings = fresh_services.model_copy(
        update={
            "chdb_path": folder / "chdb",
            "api_port": free_port(),
            "api_processes": 1,
            "store_timeout_seconds": STORE_TIMEOUT,
            "dashboards_database_url": dashboards_cluster.settings.dashboards_database_url,
        }
    )
    running = Serve(settings, folder / "serve.log")
    await running.start()
    yield running
    running.stop()


async def save_redis(settings) -> None:
    """Keep what the other Redis databases hold before Redis is stopped (a stop without SAVE loses it)."""
    admin = Redis.from_url(settings.redis_url)
    await admin.save()
    await admin.aclose()


@pytest.mark.timeout(600)
async def test_a_failing_store_is_503_with_retry_after_for_its_readers_only(serve, dashboards_cluster):
    settings = serve.settings
    readers = Readers(serve.base)
    await readers.open()
    owner = lambda: next(pid for pid, role in serve.children().items() if role == "clickhouse-owner")  # noqa: E731

    async def restart_shared() -> None:
        await asyncio.to_thread(services.up, settings)

    async def redis_down() -> Callable[[], Awaitable[None]]:
        await save_redis(settings)
        await asyncio.to_thread(services.stop_service, settings, "redis")
        return restart_shared

    async def elasticsearch_down() -> Callable[[], Awaitable[None]]:
        await asyncio.to_thread(services.stop_service, settings, "elasticsearch")
        return restart_shared

    async def dashboards_down() -> Callable[[], Awaitable[None]]:
        await asyncio.to_thread(lifecycle._down_one, dashboards_cluster)
        return lambda: asyncio.to_thread(lifecycle._up_one, dashboards_cluster)

    async def clickhouse_down() -> Callable[[], Awaitable[None]]:
        os.kill(serve.process.pid, signal.SIGSTOP)  # the supervisor cannot start the owner again meanwhile
        victim = owner()
        os.kill(victim, signal.SIGKILL)
        await eventually(lambda: _gone(victim), 10, "the killed owner gone")

        async def back() -> None:
            os.kill(serve.process.pid, signal.SIGCONT)

        return back

    def hung(pids: Callable[[], list[int]]) -> Callable[[], Awaitable[Callable[[], Awaitable[None]]]]:
        async def inject() -> Callable[[], Awaitable[None]]:
            chosen = pids()
            for pid in chosen:
                os.kill(pid, signal.SIGSTOP)

            async def back() -> None:
                for pid in chosen:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGCONT)

            return back

        return inject

    drills = [
        ("redis", "down", redis_down),
        ("redis", "hung", hung(lambda: [RedisServer(settings).pid()])),
        ("elasticsearch", "hung", hung(lambda: [Elasticsearch(settings).pid()])),
        ("dashboards", "down", dashboards_down),
        ("dashboards", "hung", hung(lambda: family(dashboards_cluster.pid()))),
        ("clickhouse", "down", clickhouse_down),
        ("clickhouse", "hung", hung(lambda: [owner()])),
        ("elasticsearch", "down", elasticsearch_down),
    ]
    report = []
    for store, how, inject in drills:
        restore = await inject()
        try:
            answers = await readers.ask()
        finally:
            await restore()
        report.append((store, how, {name: (s, round(t, 1)) for name, (s, t, _) in answers.items()}))
        status, took, failed = answers[store]
        assert status == 503 and failed is not None, (store, how, status, failed and failed.text)
        assert took <= ANSWER_WITHIN, (store, how, took)
        assert failed.headers["Retry-After"].isdigit(), failed.headers
        assert failed.json()["code"] == "unavailable" and failed.json()["status"] == 503, failed.json()
        others = {name: (s, t) for name, (s, t, _) in answers.items() if name != store}
        assert all(s == 200 for s, _ in others.values()), (store, how, others)
        await readers.all_answer(200, BACK_WITHIN if store != "elasticsearch" else 240, f"all 200 after {store}")
    log = serve.log.read_text()
    print("\n".join(f"{store:<14}{how:<6}{answers}" for store, how, answers in report))
    assert "Traceback" not in log and " 500 " not in log, log[-5000:]


async def _gone(pid: int) -> bool:
    return _state(pid) in (None, "Z")


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None

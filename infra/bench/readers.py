"""Each reader side by side with the same read made straight on its store, from this process, in the same run.

A reader's answer should cost little more than its store's: the reference is the
read the reader itself makes (the layout module's, or the reader's own query body),
sent by the store's client with nothing around it. Both go through the same
closed loops: one client for latency, many for throughput.

The embedded ClickHouse opens in one process at a time, ``prism serve``'s while it
runs: its reads are measured by the store benchmarks' process (``embedded_analytics``),
on the version ``prism serve`` then serves, before it starts.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg

from infra.bench import load
from infra.bootstrap import asyncpg_dsn, close_stores, open_stores
from infra.settings import Settings
from projections.layouts import customer_dashboards, order_analytics, order_search, order_summaries
from projections.stores import registry
from projections.stores.clickhouse import ReadPool, connect
from readers import order_analytics as analytics_reader
from readers import order_search as search_reader

#: Searched with a typo: the seeded catalogue names products "Widget …".
TYPO = "widgte"
StoreRead = Callable[[], Awaitable[Any]]
#: The longest a one-client (latency) loop runs, and the warm-up of each side at its clients before it is measured.
LATENCY_SECONDS, WARM_SECONDS = 2.0, 1.0


@dataclass(frozen=True)
class Pair:
    """One reader: its HTTP request, the store's own read, and the clients it is measured with."""

    name: str
    prism: load.Request
    store: StoreRead | None
    clients: int
    #: The store's read measured earlier in the run, when this process cannot make it (the embedded ClickHouse).
    measured: dict | None = None


class StoreReads:
    """The reads readers make, straight on the stores (no HTTP, no Prism code around them)."""

    def __init__(self, settings: Settings, seeded: dict, tenant: str, rng: random.Random) -> None:
        self.settings, self.seeded, self.tenant, self.rng = settings, seeded, tenant, rng
        self.took_ms: list[float] = []

    async def open(self, analytics_clients: int) -> None:
        self.stores = await open_stores(self.settings, only=("redis", "elasticsearch"))
        dashboards = self.settings.dashboards_reads_at or self.settings.dashboards_database_url  # as readers read
        self.pg = await asyncpg.create_pool(asyncpg_dsn(dashboards), min_size=4, max_size=64)
        self.orders = order_summaries.ServedReader(self.stores.redis, self.settings.namespace)
        self.clickhouse: ReadPool | None = None
        if self.settings.clickhouse_url:  # the embedded engine belongs to prism serve while it runs
            self.open_clickhouse(analytics_clients)

    def open_clickhouse(self, clients: int) -> None:
        """A client per concurrent read: one client runs one statement at a time."""
        self.clickhouse = ReadPool(lambda: connect(self.settings.clickhouse_url, self.settings.chdb_path), clients)

    async def close(self) -> None:
        await self.pg.close()
        await close_stores(self.stores)
        if self.clickhouse is not None:
            self.clickhouse.close()

    async def order_detail(self) -> Any:
        return await self.orders.order(self.rng.choice(self.seeded["orders"][self.tenant]))

    async def dashboard(self) -> Any:
        tables = customer_dashboards.Tables(self.settings.namespace)
        return await self.pg.fetchrow(
            f"SELECT * FROM {tables.served} WHERE customer_id = $1 AND tenant_id = $2", self._customer(), self.tenant
        )

    async def search(self) -> Any:
        names = order_search.Names(self.settings.namespace)
        found = await self.stores.elasticsearch.search(
            index=names.alias, **search_reader.search_body(self.tenant, TYPO), request_cache=False
        )
        self.took_ms.append(found["took"])
        return found

    def _analytics(self) -> ReadPool:
        if self.clickhouse is None:
            raise RuntimeError("the analytics store reads need open_clickhouse first")
        return self.clickhouse

    async def top_products(self) -> Any:
        tables = order_analytics.Tables(self.settings.namespace)
        return await self._analytics().query(
            analytics_reader.top_products_sql(tables, "revenue"), {"tenant": self.tenant, "limit": 10}
        )

    async def revenue(self) -> Any:
        tables = order_analytics.Tables(self.settings.namespace)
        return await self._analytics().query(
            analytics_reader.revenue_sql(tables, "day"),
            analytics_reader.DateRange.last_days(90).parameters(self.tenant),
        )

    def analytics(self) -> dict[str, StoreRead]:
        """The analytics readers' store reads, by reader."""
        return {"analytics_top_products": self.top_products, "analytics_revenue": self.revenue}

    def _customer(self) -> uuid.UUID:
        return uuid.UUID(self.rng.choice(self.seeded["customers"][self.tenant]))


def pairs(
    work, reads: StoreReads, clients: int, analytics_clients: int, measured: dict[str, dict] | None = None
) -> list[Pair]:
    """``measured``: the analytics store reads of ``embedded_analytics``, when this process cannot make them."""
    measured = measured or {}
    prism = {"analytics_top_products": work.analytics, "analytics_revenue": work.revenue}
    return [
        Pair("order_detail", work.order_detail, reads.order_detail, clients),
        Pair("dashboard", work.dashboard, reads.dashboard, clients),
        Pair("search_typo", work.search, reads.search, clients),
        *(
            Pair(name, prism[name], store if reads.clickhouse else None, analytics_clients, measured.get(name))
            for name, store in reads.analytics().items()
        ),
    ]


async def embedded_analytics(settings: Settings, seeded: dict, clients: int, seconds: float) -> dict[str, dict]:
    """The analytics readers' store reads on the embedded engine, by the process that has it open, as
    ``side_by_side`` measures a store's read."""
    tenant = seeded["tenants"][0]
    reads = StoreReads(settings, seeded, tenant, random.Random(12))
    reads.open_clickhouse(clients)
    try:
        return {name: await _store_loops(None, read, clients, seconds) for name, read in reads.analytics().items()}
    finally:
        if reads.clickhouse is not None:
            reads.clickhouse.close()


async def side_by_side(
    session: aiohttp.ClientSession, measured: list[Pair], seconds: float, log=print, reads: StoreReads | None = None
) -> dict[str, dict]:
    """Per reader: Prism and the store, one client (latency) and many (throughput), one after the other."""
    results = {}
    latency_seconds = min(seconds, LATENCY_SECONDS)
    for pair in measured:
        order = "Prism then the store" if pair.store else "Prism (the store's read was made earlier)"
        log(f"  readers: {pair.name}, 1 and {pair.clients} clients, {order}, {seconds:.0f}s")
        await load.closed_loop(session, pair.prism, pair.clients, WARM_SECONDS)  # caches, and pools opened
        row: dict[str, Any] = {
            "clients": pair.clients,
            "prism": {
                "one": await load.closed_loop(session, pair.prism, 1, latency_seconds),
                "many": await load.closed_loop(session, pair.prism, pair.clients, seconds),
            },
        }
        if pair.store is not None:
            if reads is not None:
                reads.took_ms.clear()
            row["store"] = await _store_loops(session, pair.store, pair.clients, seconds)
            if reads is not None and reads.took_ms:
                row["store"]["took_ms"] = {f"p{q}": load.percentile(reads.took_ms, q) for q in (50, 99)}
        else:
            row["store"] = pair.measured and {**pair.measured, "before_serve": True}
        row["ratio"] = row["store"] and _ratio(row["prism"]["many"]["per_s"], row["store"]["many"]["per_s"])
        results[pair.name] = row
    return results


async def _store_loops(session: Any, read: StoreRead, clients: int, seconds: float) -> dict:
    """One client for latency, ``clients`` for throughput, as Prism's side is measured."""
    store = as_request(read)
    await load.closed_loop(session, store, clients, WARM_SECONDS)  # as Prism's side is warmed
    return {
        "one": await load.closed_loop(session, store, 1, min(seconds, LATENCY_SECONDS)),
        "many": await load.closed_loop(session, store, clients, seconds),
    }


def as_request(read: StoreRead) -> load.Request:
    """A store read as a load request: a store that does not answer within the readers' deadline is counted as an
    error, as Prism's side counts its 503, instead of ending the run."""
    failures = registry.driver_errors()

    async def request(_session: aiohttp.ClientSession) -> None:
        try:
            await read()
        except failures as error:
            found = registry.translate(error)
            if found is None:
                raise
            raise load.Failed(found.message) from error

    return request


def _ratio(prism: float, store: float) -> float | None:
    return round(prism / store, 2) if store else None

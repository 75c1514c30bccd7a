"""Each reader side by side with the same read made straight on its store, from this process, in the same run.

A reader's answer should cost little more than its store's: the reference is the
read the reader itself makes (the layout module's, or the reader's own query body),
sent by the store's client with nothing around it. Both go through the same
closed loops: one client for latency, many for throughput.
"""

from __future__ import annotations

import asyncio
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
from projections.layouts.clickhouse import connect
from readers import order_analytics as analytics_reader
from readers import order_search as search_reader

#: Searched with a typo: the seeded catalogue names products "Widget …".
TYPO = "widgte"
StoreRead = Callable[[], Awaitable[Any]]


@dataclass(frozen=True)
class Pair:
    """One reader: its HTTP request, the store's own read, and the clients it is measured with."""

    name: str
    prism: load.Request
    store: StoreRead | None
    clients: int
    #: Why there is no store read, when there is none.
    unmeasured: str = ""


class StoreReads:
    """The reads readers make, straight on the stores (no HTTP, no Prism code around them)."""

    def __init__(self, settings: Settings, seeded: dict, tenant: str, rng: random.Random) -> None:
        self.settings, self.seeded, self.tenant, self.rng = settings, seeded, tenant, rng
        self.took_ms: list[float] = []

    async def open(self) -> None:
        self.stores = await open_stores(self.settings, only=("redis", "elasticsearch"))
        self.pg = await asyncpg.create_pool(asyncpg_dsn(self.settings.dashboards_database_url), min_size=4,
                                            max_size=64)
        self.orders = order_summaries.ServedReader(self.stores.redis, self.settings.namespace)
        self.clickhouse = None
        if self.settings.clickhouse_url:  # the embedded engine belongs to prism serve while it runs
            self.clickhouse = connect(self.settings.clickhouse_url, self.settings.chdb_path)

    async def close(self) -> None:
        await self.pg.close()
        await close_stores(self.stores)
        if self.clickhouse is not None:
            self.clickhouse.close()

    async def order_detail(self) -> Any:
        return await self.orders.order(self.rng.choice(self.seeded["orders"][self.tenant]))

    async def dashboard(self) -> Any:
        tables = customer_dashboards.Tables(self.settings.namespace)
        return await self.pg.fetchrow(f"SELECT * FROM {tables.served} WHERE customer_id = $1 AND tenant_id = $2",
                                      self._customer(), self.tenant)

    async def search(self) -> Any:
        names = order_search.Names(self.settings.namespace)
        found = await self.stores.elasticsearch.search(
            index=names.alias, **search_reader.search_body(self.tenant, TYPO), request_cache=False)
        self.took_ms.append(found["took"])
        return found

    async def top_products(self) -> Any:
        tables = order_analytics.Tables(self.settings.namespace)
        return await asyncio.to_thread(self.clickhouse.query, analytics_reader.top_products_sql(tables, "revenue"),
                                       parameters={"tenant": self.tenant, "limit": 10})

    async def revenue(self) -> Any:
        tables = order_analytics.Tables(self.settings.namespace)
        return await asyncio.to_thread(self.clickhouse.query, analytics_reader.revenue_sql(tables, "day"),
                                       parameters=analytics_reader.DateRange.last_days(90).parameters(self.tenant))

    def _customer(self) -> uuid.UUID:
        return uuid.UUID(self.rng.choice(self.seeded["customers"][self.tenant]))


def pairs(work, reads: StoreReads, clients: int, analytics_clients: int) -> list[Pair]:
    no_clickhouse = "" if reads.clickhouse else ("the embedded ClickHouse belongs to prism serve while it runs; "
                                                 "set PRISM_CLICKHOUSE_URL to measure a server's own read")
    return [
        Pair("order_detail", work.order_detail, reads.order_detail, clients),
        Pair("dashboard", work.dashboard, reads.dashboard, clients),
        Pair("search_typo", work.search, reads.search, clients),
        Pair("analytics_top_products", work.analytics, reads.top_products if reads.clickhouse else None,
             analytics_clients, no_clickhouse),
        Pair("analytics_revenue", work.revenue, reads.revenue if reads.clickhouse else None, analytics_clients,
             no_clickhouse),
    ]


async def side_by_side(session: aiohttp.ClientSession, measured: list[Pair], seconds: float, log=print,
                       reads: StoreReads | None = None) -> dict[str, dict]:
    """Per reader: Prism and the store, one client (latency) and many (throughput), one after the other."""
    results = {}
    latency_seconds = min(seconds, 2.0)
    for pair in measured:
        log(f"  readers: {pair.name}, 1 and {pair.clients} clients, Prism then the store, {seconds:.0f}s")
        await load.closed_loop(session, pair.prism, 4, 1.0)  # warm caches and pools
        row: dict[str, Any] = {"clients": pair.clients,
                               "prism": {"one": await load.closed_loop(session, pair.prism, 1, latency_seconds),
                                         "many": await load.closed_loop(session, pair.prism, pair.clients, seconds)}}
        if pair.store is not None:
            store = _as_request(pair.store)
            if reads is not None:
                reads.took_ms.clear()
            row["store"] = {"one": await load.closed_loop(session, store, 1, latency_seconds),
                            "many": await load.closed_loop(session, store, pair.clients, seconds)}
            if reads is not None and reads.took_ms:
                row["store"]["took_ms"] = {f"p{q}": load.percentile(reads.took_ms, q) for q in (50, 99)}
            row["ratio"] = _ratio(row["prism"]["many"]["per_s"], row["store"]["many"]["per_s"])
        else:
            row["store"], row["ratio"], row["unmeasured"] = None, None, pair.unmeasured
        results[pair.name] = row
    return results


def _as_request(read: StoreRead) -> load.Request:
    async def request(_session: aiohttp.ClientSession) -> None:
        await read()
    return request


def _ratio(prism: float, store: float) -> float | None:
    return round(prism / store, 2) if store else None

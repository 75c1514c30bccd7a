"""The read stores, by name: the one list of them, and what opens, closes, pings and translates each.

``infra.bootstrap`` opens and closes them from here, ``/ready`` pings them, the CLI names them, workers and the
HTTP edge translate their failures with them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping

from projections.layouts import clickhouse_cluster
from projections.stores.adapter import StoreAdapter, StoreSettings
from projections.stores.clickhouse import CLICKHOUSE
from projections.stores.clients import Stores
from projections.stores.elasticsearch import ELASTICSEARCH
from projections.stores.postgres import DASHBOARDS, WRITE_DATABASE
from projections.stores.redis import REDIS
from write.errors import PrismError

#: Every read store, by its name (a field of ``Stores``, the ``store`` of its projections).
ADAPTERS: Mapping[str, StoreAdapter] = {a.name: a for a in (REDIS, ELASTICSEARCH, CLICKHOUSE, DASHBOARDS)}
#: The store names, in the order they are listed everywhere.
NAMES: tuple[str, ...] = tuple(ADAPTERS)


def open_stores(
    settings: StoreSettings,
    namespace: str,
    only: Collection[str] | None = None,
    deadline: float | None = None,
    clickhouse_reads: int = 0,
) -> Stores:
    """Clients of the read stores (``only`` these, if given), each call bounded by ``deadline`` seconds (the
    readers' ``store_timeout_seconds`` by default); with ``clickhouse_reads``, that many kept readers' clients."""
    wanted = [name for name in NAMES if only is None or name in only]
    limit = settings.store_timeout_seconds if deadline is None else deadline
    opened = {name: ADAPTERS[name].open(settings, limit) for name in wanted}
    stores = Stores(namespace=namespace, deadline=limit, **opened)
    clickhouse_cluster.configure(stores, settings.clickhouse_url, settings.clickhouse_cluster)
    stores.search_index = {
        "number_of_shards": settings.elasticsearch_shards,
        "number_of_replicas": settings.elasticsearch_replicas,
    }
    if stores.clickhouse is not None and clickhouse_reads:
        stores.clickhouse_reads = CLICKHOUSE.open_reads(settings, clickhouse_reads)
    if stores.dashboards is not None and settings.dashboards_reads_at:
        stores.dashboards_reads = DASHBOARDS.open_url(settings.dashboards_reads_at, settings, limit)
    return stores


async def close_stores(stores: Stores) -> None:
    """Close every client opened in ``stores``."""
    if stores.clickhouse_reads is not None:
        stores.clickhouse_reads.close()
    if stores.dashboards_reads is not None:
        await DASHBOARDS.close(stores.dashboards_reads)
    for name, adapter in ADAPTERS.items():
        client = getattr(stores, name)
        if client is not None:
            await adapter.close(client)


async def ping_all(stores: Stores, deadline: float) -> dict[str, BaseException | None]:
    """Each open store's answer to a ping within ``deadline`` seconds: None, or what failed (the dashboards' replica,
    where their readers read, answers for the dashboards too)."""
    opened = [(name, getattr(stores, name)) for name in NAMES if getattr(stores, name) is not None]
    if stores.dashboards_reads is not None:
        opened.append(("dashboards", stores.dashboards_reads))
    results = await asyncio.gather(
        *(asyncio.wait_for(ADAPTERS[name].ping(client), deadline) for name, client in opened),
        return_exceptions=True,
    )
    answers: dict[str, BaseException | None] = {}
    for (name, _), result in zip(opened, results, strict=True):
        if answers.get(name) is None:
            answers[name] = result if isinstance(result, BaseException) else None
    return answers


def translate(error: BaseException, store: str | None = None) -> PrismError | None:
    """Prism's error for a failure of ``store``, or None if its adapter does not know it.

    Without a store (a command, an operations route), a driver's own type names its store; a Postgres failure or a
    bare connection failure is the write database's, the one database every route reaches without an adapter.
    """
    if store is not None and store in ADAPTERS:
        return ADAPTERS[store].translate(error)
    if isinstance(error, PrismError):
        return error
    for adapter in (REDIS, ELASTICSEARCH, CLICKHOUSE):
        found = adapter.recognize(error)
        if found is not None:
            return found
    return WRITE_DATABASE.translate(error)


def driver_errors(stores: Collection[str] = NAMES) -> tuple[type[Exception], ...]:
    """The base types of the failures of these stores' drivers and the write database's (and ``OSError``,
    ``TimeoutError`` among them): what the HTTP edge hands to ``translate`` before anything becomes a 500. Naming a
    store loads its driver: a process names those it opens."""
    adapters = (*(ADAPTERS[name] for name in NAMES if name in stores), WRITE_DATABASE)
    return tuple(dict.fromkeys(kind for adapter in adapters for kind in adapter.errors))

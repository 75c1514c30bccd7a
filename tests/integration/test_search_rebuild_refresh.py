"""A search version built beside the served one: no refresh until it is served, and still complete when it is."""

from __future__ import annotations

import uuid
from dataclasses import replace

from projections.base import Batch
from projections.order_search import OrderSearch
from tests.integration.history import write_history
from write import event_log


async def _refresh_interval(es, index: str) -> str:
    found = await es.indices.get_settings(index=index, name="index.refresh_interval")
    return found[index]["settings"]["index"]["refresh_interval"]


async def test_an_unserved_version_is_not_refreshed_until_served_and_its_renames_reach_every_order(
    stores, bus, tenant, write_engine
):
    await write_history(bus, tenant)
    async with write_engine.connect() as conn:
        events = [ev for ev in await event_log.read_after(conn, 0, 1_000_000) if ev.tenant_id == tenant]
    handled = [ev for ev in events if ev.type in OrderSearch.handles]
    isolated = replace(stores, namespace=f"refresh{uuid.uuid4().hex[:8]}")
    served, building = OrderSearch(isolated, 1), OrderSearch(isolated, 2)
    try:
        await served.setup()
        await served.apply(Batch(handled, events[-1].position))
        await building.setup()
        assert await _refresh_interval(stores.elasticsearch, building.names.index) == "-1"
        # Small batches: renames arrive in batches after the orders they reach, found by a search of the index.
        for start in range(0, len(handled), 3):
            chunk = handled[start : start + 3]
            await building.apply(Batch(chunk, chunk[-1].position))

        searched = await stores.elasticsearch.count(index=building.names.index)
        stored = await stores.elasticsearch.mget(
            index=building.names.index,
            ids=[
                served_id["_id"]
                for served_id in (await stores.elasticsearch.search(index=served.names.alias, size=100, source=False))[
                    "hits"
                ]["hits"]
            ],
        )
        assert all(doc["found"] for doc in stored["docs"]), "the unserved version is missing documents"
        assert searched["count"] < len(stored["docs"]), "the unserved version was refreshed while being built"

        await building.serve()
        assert await _refresh_interval(stores.elasticsearch, building.names.index) == f"{OrderSearch.freshness_ms}ms"
        assert (await stores.elasticsearch.count(index=served.names.alias))["count"] == len(stored["docs"])
        assert list((await building.state()).values()) == list((await served.state()).values())
    finally:
        await building.drop()
        await served.drop()

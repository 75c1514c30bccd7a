"""A store that loses acknowledged writes (a Redis failover to a replica they had not reached yet, a restart without
persistence) sets its checkpoint back: the order summaries' next batch refuses to write past it, and the worker
applies again from the checkpoint the store has. Without that guard, the next batch's checkpoint covers the lost
documents and they are never written again."""

from __future__ import annotations

import pytest
from redis.exceptions import ResponseError

from projections.base import Batch
from projections.order_summaries import OrderSummaries
from projections.stores.redis import REDIS
from write.errors import StoreUnavailable
from write.facts import tenant_facts

#: A version of these tests' own: the session's served version is never touched.
VERSION = 77


async def _lose_the_last_batch(stores, batches: list[list]) -> OrderSummaries:
    """A writer that applied every batch but the last-but-one's effects are gone: the store holds only what the
    first batch wrote, as a replica promoted before the second reached it would (the first batch written again by
    another object into the emptied version)."""
    writer = OrderSummaries(stores, VERSION)
    await writer.drop()
    assert await writer.checkpoint() == 0
    for events in batches[:2]:
        await writer.apply(Batch(events, events[-1].position))
    await writer.drop()
    replica = OrderSummaries(stores, VERSION)
    await replica.apply(Batch(batches[0], batches[0][-1].position))
    return writer


def _thirds(events: list) -> list[list]:
    handled = [ev for ev in events if ev.type in OrderSummaries.handles]
    third = len(handled) // 3
    return [handled[:third], handled[third : 2 * third], handled[2 * third :]]


async def _drift(writer: OrderSummaries, write_engine, tenant: str) -> set[str]:
    async with write_engine.connect() as conn:
        facts = await tenant_facts(conn, tenant)
    expected, found = writer.expected(facts), await writer.fingerprints(tenant)
    return {key for key in expected.keys() | found.keys() if expected.get(key) != found.get(key)}


async def test_a_batch_past_a_lost_write_is_refused_and_applied_again_from_the_stores_checkpoint(
    stores, tenant, tenant_events, write_engine
):
    batches = _thirds(tenant_events)
    writer = await _lose_the_last_batch(stores, batches)
    kept = batches[0][-1].position

    with pytest.raises(ResponseError, match="behind") as refused:
        await writer.apply(Batch(batches[2], batches[2][-1].position))
    assert isinstance(REDIS.translate(refused.value), StoreUnavailable)  # retried, as a store not ready is
    assert await writer.checkpoint() == kept  # nothing moved: and the worker's next drain starts from here

    await writer.apply(Batch(batches[1] + batches[2], batches[2][-1].position))
    assert await _drift(writer, write_engine, tenant) == set()
    await writer.drop()


async def test_without_the_guard_the_lost_documents_stay_lost(stores, tenant, tenant_events, write_engine):
    batches = _thirds(tenant_events)
    writer = await _lose_the_last_batch(stores, batches)
    writer._written = 0  # the guard off: the writer no longer says what it wrote before

    await writer.apply(Batch(batches[2], batches[2][-1].position))
    assert await writer.checkpoint() == batches[2][-1].position
    assert await _drift(writer, write_engine, tenant) != set()  # the second batch's orders are gone for good
    await writer.drop()

"""Each store adapter on its real store: replays and out-of-order batches end where an in-order run does."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from projections.base import Batch
from projections.registry import PROJECTIONS
from projections.stores.clients import Stores
from tests.conftest import NAMESPACE
from tests.integration.history import write_history
from write import event_log


@pytest.fixture
async def tenant_events(bus, tenant, write_engine):
    await write_history(bus, tenant)
    async with write_engine.connect() as conn:
        events = await event_log.read_after(conn, 0, 1_000_000)
    return [ev for ev in events if ev.tenant_id == tenant]


async def fresh(name: str, stores: Stores, namespace: str):
    projection = PROJECTIONS[name](replace(stores, namespace=namespace))
    await projection.drop()
    await projection.setup()
    return projection


def batches_of(events, size: int) -> list[Batch]:
    chunks = [events[i : i + size] for i in range(0, len(events), size)]
    return [Batch(chunk, chunk[-1].position) for chunk in chunks]


def handled(projection, batch: Batch) -> Batch:
    return Batch([ev for ev in batch.events if ev.type in projection.handles], batch.upto)


def delivery(events, rng: random.Random) -> list[Batch]:
    """Generated redelivery: random batch sizes, every batch at least once, some twice, all in random order."""
    batches = batches_of(events, rng.randint(1, 9))
    redelivered = batches + rng.sample(batches, len(batches) // 2)
    rng.shuffle(redelivered)
    return redelivered


@pytest.mark.parametrize("name", list(PROJECTIONS))
async def test_replayed_and_reordered_batches_converge(name, stores, tenant_events):
    in_order = await fresh(name, stores, f"{NAMESPACE}_inorder")
    for batch in batches_of(tenant_events, 5):
        await in_order.apply(handled(in_order, batch))
    expected = await in_order.state()
    assert expected, "the in-order run wrote nothing"

    for seed in range(3):
        shuffled = await fresh(name, stores, f"{NAMESPACE}_shuffled")
        for batch in delivery(tenant_events, random.Random(f"{name}-{seed}")):
            await shuffled.apply(handled(shuffled, batch))
        assert await shuffled.state() == expected, f"seed {seed}"
        assert await shuffled.checkpoint() == await in_order.checkpoint() == tenant_events[-1].position


@pytest.mark.parametrize("name", list(PROJECTIONS))
async def test_the_same_batch_twice_changes_nothing(name, stores, tenant_events):
    projection = await fresh(name, stores, f"{NAMESPACE}_twice")
    for batch in batches_of(tenant_events, 1000):
        await projection.apply(handled(projection, batch))
    once = await projection.state()
    for batch in batches_of(tenant_events, 1000):
        await projection.apply(handled(projection, batch))
    assert await projection.state() == once

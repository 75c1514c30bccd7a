"""The contract every registered projection keeps, run on its real store for each one in ``PROJECTIONS``.

A projection registered tomorrow is picked up with no edit here. Each test uses a
namespace of its own, fed with one tenant's events written through the command bus.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from infra.ops import audit
from projections.base import Batch, Projection
from projections.registry import PROJECTIONS
from projections.stores.clients import Stores
from tests.conftest import NAMESPACE
from workers.catch_up import catch_up
from write.facts import TenantFacts, tenant_facts
from write.partitions import Partition, of

pytestmark = pytest.mark.parametrize("name", list(PROJECTIONS))


@pytest.fixture
async def facts(tenant_events, tenant, write_engine) -> TenantFacts:
    async with write_engine.connect() as conn:
        return await tenant_facts(conn, tenant)


async def fresh(name: str, stores: Stores, namespace: str, version: int = 1) -> Projection:
    projection = PROJECTIONS[name](replace(stores, namespace=namespace), version)
    await projection.drop()
    await projection.setup()
    return projection


def halves(name: str, stores: Stores, namespace: str) -> list[Projection]:
    """The first version of a projection, split in two partitions."""
    return [PROJECTIONS[name](replace(stores, namespace=namespace), 1, Partition(p, 2)) for p in range(2)]


def batches_of(events, size: int) -> list[Batch]:
    chunks = [events[i : i + size] for i in range(0, len(events), size)]
    return [Batch(chunk, chunk[-1].position) for chunk in chunks]


def handled(projection: Projection, batch: Batch) -> Batch:
    return Batch([ev for ev in batch.events if ev.type in projection.handles], batch.upto)


async def apply_all(projection: Projection, events, size: int = 5) -> None:
    for batch in batches_of(events, size):
        await projection.apply(handled(projection, batch))


def delivery(events, rng: random.Random) -> list[Batch]:
    """Generated redelivery: random batch sizes, every batch at least once, some twice, all in random order."""
    batches = batches_of(events, rng.randint(1, 9))
    redelivered = batches + rng.sample(batches, len(batches) // 2)
    rng.shuffle(redelivered)
    return redelivered


def is_empty(state: dict) -> bool:
    return all(not content for content in state.values())


async def test_setup_is_idempotent_and_keeps_what_was_written(name, stores, tenant_events):
    projection = await fresh(name, stores, f"{NAMESPACE}_setup")
    await projection.setup()
    assert await projection.checkpoint() == 0
    assert is_empty(await projection.state())
    await apply_all(projection, tenant_events)
    written = await projection.state()
    await projection.setup()
    assert await projection.state() == written
    assert await projection.checkpoint() == tenant_events[-1].position


async def test_applied_events_give_the_fingerprints_the_write_model_implies(name, stores, tenant_events, facts, tenant):
    projection = await fresh(name, stores, f"{NAMESPACE}_apply")
    await apply_all(projection, tenant_events)
    expected = projection.expected(facts)
    assert expected, "the write model implies no documents"
    assert await projection.fingerprints(tenant) == expected
    assert await projection.fingerprints("no-such-tenant") == {}
    assert await projection.checkpoint() == tenant_events[-1].position


async def test_replayed_and_reordered_batches_converge(name, stores, tenant_events):
    in_order = await fresh(name, stores, f"{NAMESPACE}_inorder")
    await apply_all(in_order, tenant_events)
    expected = await in_order.state()
    assert not is_empty(expected), "the in-order run wrote nothing"

    for seed in range(3):
        shuffled = await fresh(name, stores, f"{NAMESPACE}_shuffled")
        for batch in delivery(tenant_events, random.Random(f"{name}-{seed}")):
            await shuffled.apply(handled(shuffled, batch))
        assert await shuffled.state() == expected, f"seed {seed}"
        assert await shuffled.checkpoint() == await in_order.checkpoint() == tenant_events[-1].position


async def test_the_same_batch_twice_changes_nothing(name, stores, tenant_events):
    projection = await fresh(name, stores, f"{NAMESPACE}_twice")
    await apply_all(projection, tenant_events, size=1000)
    once = await projection.state()
    await apply_all(projection, tenant_events, size=1000)
    assert await projection.state() == once


async def test_the_checkpoint_moves_to_upto_and_never_back(name, stores, tenant_events):
    projection = await fresh(name, stores, f"{NAMESPACE}_checkpoint")
    batches = batches_of(tenant_events, 5)
    await projection.apply(handled(projection, batches[0]))
    assert await projection.checkpoint() == batches[0].upto
    await projection.apply(Batch([], batches[0].upto + 1))  # a slice of events it ignores still moves it
    assert await projection.checkpoint() == batches[0].upto + 1
    for batch in batches[1:]:
        await projection.apply(handled(projection, batch))
    await projection.apply(handled(projection, batches[0]))  # a late redelivery
    assert await projection.checkpoint() == tenant_events[-1].position


async def test_serve_moves_readers_to_a_second_version_and_drop_leaves_the_other(name, stores, tenant_events):
    first = await fresh(name, stores, f"{NAMESPACE}_serve")
    assert await first.is_served(), "the first version of a store is served at setup"
    await apply_all(first, tenant_events[: len(tenant_events) // 2])
    second = await fresh(name, stores, f"{NAMESPACE}_serve", version=2)
    assert await first.is_served() and not await second.is_served(), "a later version is served only by serve"
    await apply_all(second, tenant_events)
    await second.prepare()
    await second.serve()
    assert await second.is_served() and not await first.is_served()
    kept = await first.state()
    await second.drop()
    assert await first.state() == kept
    await first.serve()
    assert await first.is_served()


async def test_repair_restores_deleted_documents(name, stores, tenant_events, facts, tenant, write_engine):
    projection = await fresh(name, stores, f"{NAMESPACE}_repair")
    await apply_all(projection, tenant_events)
    expected = projection.expected(facts)
    damaged = sorted(expected)[:2]
    await projection.drop()  # every document gone, then the two drifted ones repaired from their events
    await projection.setup()
    drift = [audit.Drift(name, tenant, "missing", key) for key in damaged]
    assert await audit.repair(write_engine, {name: projection}, drift) >= len(damaged)
    found = await projection.fingerprints(tenant)
    assert {key: found.get(key) for key in damaged} == {key: expected[key] for key in damaged}


async def test_drop_removes_what_the_version_wrote(name, stores, tenant_events, tenant):
    projection = await fresh(name, stores, f"{NAMESPACE}_drop")
    await apply_all(projection, tenant_events)
    assert await projection.fingerprints(tenant)
    await projection.drop()
    await projection.setup()
    assert is_empty(await projection.state())
    assert await projection.checkpoint() == 0


async def test_the_partitions_of_a_version_keep_checkpoints_of_their_own(name, stores, tenant_events):
    whole = await fresh(name, stores, f"{NAMESPACE}_parts")
    first, second = halves(name, stores, f"{NAMESPACE}_parts")
    assert len({whole.label, first.label, second.label}) == 3
    await apply_all(first, tenant_events)
    await second.apply(Batch([], 7))
    checkpoints = [await p.checkpoint() for p in (first, second, whole)]
    assert checkpoints == [tenant_events[-1].position, 7, 0]
    await whole.drop()  # the version's storage, its partitions' checkpoints with it
    await whole.setup()
    assert [await p.checkpoint() for p in (first, second)] == [0, 0]


async def test_a_partition_catches_up_its_tenants_alone(name, stores, write_engine, tenant_events, facts, tenant):
    whole = await fresh(name, stores, f"{NAMESPACE}_caught")
    parts = halves(name, stores, f"{NAMESPACE}_caught")
    mine, other = parts[of(tenant, 2).index], parts[1 - of(tenant, 2).index]
    for part in (other, mine):  # the version's storage is shared: the other partition first, alone
        progress = await catch_up(write_engine, part, batch_size=1000)
        assert progress.drained and progress.checkpoint >= tenant_events[-1].position
        if part is other:
            assert await whole.fingerprints(tenant) == {}, "a partition applied another partition's tenant"
    assert await whole.fingerprints(tenant) == whole.expected(facts)
    assert await whole.checkpoint() == 0


async def test_a_holder_of_a_partition_that_comes_back_late_moves_nothing_back(name, stores, tenant_events, tenant):
    """A host cut off mid-batch holds a partition no more, but may still write what it had read: its batches reach
    the store after the new holder's, and the store's guards keep the newer state and checkpoint."""
    part = of(tenant, 2)

    async def holder(namespace: str) -> Projection:
        await fresh(name, stores, namespace)  # the version's storage, empty
        return PROJECTIONS[name](replace(stores, namespace=namespace), 1, part)

    reference = await holder(f"{NAMESPACE}_late_ref")
    await apply_all(reference, tenant_events)
    new = await holder(f"{NAMESPACE}_late")
    late = PROJECTIONS[name](replace(stores, namespace=f"{NAMESPACE}_late"), 1, part)  # the old holder's process
    batches = batches_of(tenant_events, 5)
    await apply_all(new, tenant_events)
    for batch in batches[: len(batches) // 2]:  # what the late holder had read before it was cut off
        await late.apply(handled(late, batch))
    await late.apply(Batch([], batches[0].upto))
    assert await new.checkpoint() == await late.checkpoint() == tenant_events[-1].position
    assert await new.state() == await reference.state()

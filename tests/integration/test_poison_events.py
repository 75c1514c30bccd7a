"""A handler that keeps failing on one event: parked after its retries, then halt or skip, then retry or discard."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import pytest

from projections.base import Batch
from projections.customer_dashboards import CustomerDashboards
from tests.conftest import NAMESPACE
from tests.integration.history import write_history
from workers import dead_letters
from workers.catch_up import Policy, catch_up
from write import event_log


class Poisoned(CustomerDashboards):
    """The dashboards projection with a handler bug on one event type, until ``fixed``."""

    name: ClassVar[str] = "poisoned_dashboards"
    fixed = False
    poison_type = "CustomerRenamed"
    poison_tenant = ""

    async def apply(self, batch: Batch) -> None:
        if not self.fixed and any(
            ev.type == self.poison_type and ev.tenant_id == self.poison_tenant for ev in batch.events
        ):
            raise ValueError("cannot project this event")
        await super().apply(batch)


async def run_until_settled(engine, projection, policy: Policy) -> list:
    """Dramatiq's retries, played by hand: call catch-up until it stops raising."""
    errors = []
    for _ in range(policy.poison_after + 2):
        try:
            return [*errors, await catch_up(engine, projection, 25, policy=policy)]
        except ValueError as error:
            errors.append(error)
    raise AssertionError(f"catch-up never settled: {errors}")


@pytest.fixture
async def poisoned(stores, bus, tenant, write_engine):
    await write_history(bus, tenant)
    projection = Poisoned(replace(stores, namespace=f"{NAMESPACE}_poison"))
    projection.poison_tenant = tenant
    await projection.drop()
    await projection.setup()
    async with write_engine.connect() as conn:
        events = await event_log.read_after(conn, 0, 1_000_000)
    poison = next(ev for ev in events if ev.tenant_id == tenant and ev.type == Poisoned.poison_type)
    yield projection, poison, events[-1].position
    for letter in await dead_letters.listing(write_engine, projection.name):
        await dead_letters.discard(write_engine, {projection.name: projection}, letter.id)


async def test_halt_parks_the_event_and_stops_there_until_retried(poisoned, write_engine):
    projection, poison, head = poisoned
    outcome = await run_until_settled(write_engine, projection, Policy(dead_letters.HALT, poison_after=3))
    assert len(outcome) == 3 and outcome[-1].halted  # two retries raise, the third attempt parks and halts
    assert await projection.checkpoint() < poison.position
    [letter] = await dead_letters.listing(write_engine, projection.name)
    assert (letter.position, letter.attempts, letter.policy, letter.status) == (poison.position, 3, "halt", "parked")
    assert "cannot project this event" in letter.error
    assert (await catch_up(write_engine, projection, 25, policy=Policy())).halted  # stays halted

    projection.fixed = True
    retried = await dead_letters.retry(write_engine, {projection.name: projection}, letter.id)
    assert retried.status == "retried"
    assert not (await catch_up(write_engine, projection, 25, policy=Policy())).halted
    assert await projection.checkpoint() == head


async def test_skip_parks_the_event_and_moves_on(poisoned, write_engine):
    projection, poison, head = poisoned
    outcome = await run_until_settled(write_engine, projection, Policy(dead_letters.SKIP, poison_after=2))
    assert not outcome[-1].halted and outcome[-1].parked
    assert await projection.checkpoint() == head
    [letter] = await dead_letters.listing(write_engine, projection.name)
    assert (letter.position, letter.policy) == (poison.position, "skip")
    renamed = poison.payload["name"]
    assert renamed not in str(await dashboard_names(projection))

    projection.fixed = True
    await dead_letters.retry(write_engine, {projection.name: projection}, letter.id)
    assert renamed in str(await dashboard_names(projection))
    assert await projection.checkpoint() == head


async def test_discarding_a_halt_moves_past_the_event(poisoned, write_engine):
    projection, poison, _head = poisoned
    await run_until_settled(write_engine, projection, Policy(dead_letters.HALT, poison_after=1))
    [letter] = await dead_letters.listing(write_engine, projection.name)
    await dead_letters.discard(write_engine, {projection.name: projection}, letter.id)
    assert await projection.checkpoint() == poison.position
    with pytest.raises(dead_letters.DeadLetterError, match="already discarded"):
        await dead_letters.retry(write_engine, {projection.name: projection}, letter.id)


async def test_a_store_outage_is_retried_and_never_parked(poisoned, write_engine):
    projection, _, head = poisoned
    projection.poison_type, projection.fixed = "OrderPlaced", False

    async def down(batch: Batch) -> None:
        raise ConnectionError("connection refused")

    original, projection.apply = projection.apply, down
    for _ in range(5):
        with pytest.raises(ConnectionError):
            await catch_up(write_engine, projection, 25, policy=Policy(poison_after=1))
    assert await dead_letters.listing(write_engine, projection.name) == []
    projection.apply = original
    projection.fixed = True
    await catch_up(write_engine, projection, 25, policy=Policy())
    assert await projection.checkpoint() == head


async def dashboard_names(projection: Poisoned) -> list[str]:
    from sqlalchemy import text

    async with projection.engine.connect() as conn:
        rows = await conn.execute(
            text(f"SELECT name FROM {projection.tables.dashboards} WHERE tenant_id = :t"),
            {"t": projection.poison_tenant},
        )
        return [r[0] for r in rows]

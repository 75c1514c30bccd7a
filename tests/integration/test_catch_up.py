"""Catching up from the log: batches, checkpoints, one consumer at a time, and no checkpoint past a failure."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import pytest
from sqlalchemy import text

from projections.base import Batch
from projections.order_summaries import OrderSummaries
from tests.conftest import NAMESPACE
from tests.integration.history import write_history
from workers.catch_up import catch_up
from workers.locks import lock_key
from write import event_log
from write import events as e


class Flaky(OrderSummaries):
    """The Redis projection, its store failing on the n-th batch."""

    name: ClassVar[str] = "flaky_summaries"

    def __init__(self, stores, fail_on: int) -> None:
        super().__init__(stores)
        self.fail_on, self.calls = fail_on, 0

    async def apply(self, batch: Batch) -> None:
        self.calls += 1
        if self.calls == self.fail_on:
            raise ConnectionError("store unavailable")
        await super().apply(batch)


@pytest.fixture
async def flaky(stores, bus, tenant):
    await write_history(bus, tenant)
    projection = Flaky(replace(stores, namespace=f"{NAMESPACE}_flaky"), fail_on=2)
    await projection.drop()
    return projection


async def test_a_failing_batch_leaves_the_checkpoint_at_the_last_applied_event(flaky, write_engine):
    with pytest.raises(ConnectionError):
        await catch_up(write_engine, flaky, batch_size=10)
    async with write_engine.connect() as conn:
        first_batch, first_upto = await event_log.read_slice(conn, 0, 10, flaky.handles)
        head = await event_log.head(conn)
    assert len(first_batch) == 10 and await flaky.checkpoint() == first_upto == first_batch[-1].position

    progress = await catch_up(write_engine, flaky, batch_size=10)  # the retry resumes from the checkpoint
    assert (progress.checkpoint, await flaky.checkpoint()) == (head, head)


async def test_a_second_consumer_of_the_same_projection_stands_aside(flaky, write_engine):
    async with write_engine.connect() as holder:
        await holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_key(flaky.name)})
        progress = await catch_up(write_engine, flaky, batch_size=10)
        await holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(flaky.name)})
    assert progress.skipped and flaky.calls == 0


async def test_a_slice_holds_only_the_types_asked_for_and_ends_past_the_others(write_engine, bus, tenant):
    await write_history(bus, tenant)
    customers = frozenset({e.CUSTOMER_REGISTERED})
    async with write_engine.connect() as conn:
        head = await event_log.head(conn)
        every = await event_log.read_after(conn, 0, 1_000_000, upcasting=False)
        found, upto = await event_log.read_slice(conn, 0, 1_000_000, customers)
        first, first_upto = await event_log.read_slice(conn, 0, 2, customers)
    wanted = [ev for ev in every if ev.type in customers]
    assert found == wanted and every[-1].type not in customers
    assert upto == head, "a slice ends at the head, past the last events of other types"
    assert first == wanted[:2] and first_upto == wanted[1].position, "a full slice ends at its last event"


async def test_a_catch_up_passes_events_it_does_not_handle(flaky, write_engine):
    flaky.fail_on = 0
    progress = await catch_up(write_engine, flaky, batch_size=1_000_000)
    async with write_engine.connect() as conn:
        head = await event_log.head(conn)
        every = await event_log.read_after(conn, 0, 1_000_000, upcasting=False)
    assert progress.checkpoint == head == await flaky.checkpoint()
    assert progress.applied == sum(ev.type in flaky.handles for ev in every) < len(every)


async def test_a_slice_whose_read_outlasts_its_budget_is_still_applied(flaky, write_engine):
    """Under load a builder's read of one batch can take longer than its message's slice; were that read dropped
    at the budget, every message would read the same batch again and the build would never move."""
    flaky.fail_on = 0
    progress = await catch_up(write_engine, flaky, batch_size=10, seconds=0.0)  # spent before the first read
    async with write_engine.connect() as conn:
        _first_batch, first_upto = await event_log.read_slice(conn, 0, 10, flaky.handles)
    assert (progress.batches, progress.checkpoint, progress.drained) == (1, first_upto, False)
    assert await flaky.checkpoint() == first_upto

"""A waiting operation gets a projection's lock even while catch-ups keep asking for it, or keep finding more."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import replace
from typing import ClassVar

import pytest

from infra.bootstrap import listen_dsn
from projections.base import Batch
from projections.order_summaries import OrderSummaries
from tests.conftest import NAMESPACE, eventually
from workers import catch_up as catch_up_module
from workers.catch_up import Policy, catch_up, follow
from workers.locks import awaited, exclusively, projection_lock
from workers.notices import Notices
from write import events as e
from write.bus import CommandBus
from write.commands import RegisterTenant


async def test_catch_ups_step_aside_for_a_waiting_operation(write_engine):
    name = "lock-waiters-probe"
    holding = asyncio.Event()
    release = asyncio.Event()

    async def follower() -> None:  # holds the lock, as a catch-up following commits does
        async with projection_lock(write_engine, name) as held:
            assert held
            holding.set()
            await release.wait()

    first = asyncio.create_task(follower())
    await holding.wait()
    assert not await awaited(write_engine, name)
    entered, finish = asyncio.Event(), asyncio.Event()

    async def operation() -> None:
        async with exclusively(write_engine, name, wait=10):
            entered.set()
            await finish.wait()  # still inside when the catch-up below asks, if it got in first

    waiting = asyncio.create_task(operation())
    await eventually(lambda: awaited(write_engine, name), 10, "the waiting operation visible to followers")
    release.set()
    await first
    # A catch-up arriving now, with the lock free, must leave it to the waiter.
    async with projection_lock(write_engine, name) as held:
        assert not held, "a catch-up took the lock from under a waiting operation"
    finish.set()
    await asyncio.wait_for(waiting, 10)
    assert entered.is_set() and not await awaited(write_engine, name)


class Busy(OrderSummaries):
    """The Redis projection, each of whose batches is followed by a new commit: the log never looks empty to it, as
    under steady writes to a store slower than the commits' pace."""

    name: ClassVar[str] = "busy_summaries"
    handles: ClassVar[frozenset[str]] = frozenset({e.TENANT_REGISTERED})

    def __init__(self, stores, bus: CommandBus, commits_per_batch: int = 1) -> None:
        super().__init__(stores)
        self.bus, self.writing, self.batches, self.commits_per_batch = bus, True, 0, commits_per_batch

    async def apply(self, batch: Batch) -> None:
        await super().apply(batch)
        self.batches += 1
        for _ in range(self.commits_per_batch if self.writing else 0):
            await self.bus.execute(RegisterTenant(f"t-{secrets.token_hex(4)}", "Steady write"))


@pytest.mark.parametrize("consumer", ["catch_up", "follow"])
async def test_a_catch_up_that_never_finds_the_log_empty_steps_aside_for_a_waiting_operation(
    consumer, stores, bus, write_engine, fresh_services, monkeypatch
):
    # A catch-up reads on while its slices are full (one event each here), and reads the next one ahead, before
    # the batch's own commit: a backlog that grows by one a batch keeps every slice full.
    projection = Busy(replace(stores, namespace=f"{NAMESPACE}_busy"), bus, 2 if consumer == "catch_up" else 1)
    await projection.drop()
    for _ in range(2):
        await bus.execute(RegisterTenant(f"t-{secrets.token_hex(4)}", "First write"))
    notices = Notices(listen_dsn(fresh_services))
    statements: list[str] = []  # the per-batch statement a follower no longer sends: it hears the ask instead

    async def counted(engine, label: str) -> bool:
        statements.append(label)
        return await awaited(engine, label)

    monkeypatch.setattr(catch_up_module, "awaited", counted)

    running = asyncio.create_task(
        catch_up(write_engine, projection, batch_size=1)
        if consumer == "catch_up"
        else follow(write_engine, projection, 1_000, Policy(), notices, seconds=600)
    )
    try:
        await eventually(lambda: _true(projection.batches >= 3), 30, "the consumer applying batch after batch")
        async with exclusively(write_engine, projection.label, wait=10):
            assert not running.done() or not running.result().drained
    finally:
        projection.writing = False
        notices.stop()  # a follow still inside would otherwise wait out its seconds
        progress = await asyncio.wait_for(running, 30)
        await notices.close()
    assert not progress.drained and progress.batches >= 3, "it stepped aside with more of the log to read"
    if consumer == "follow":
        assert not statements, f"the follower asked the database after {len(statements)} batches"
    else:
        assert statements, "a catch-up without notices asks the database"


async def test_a_follower_waiting_for_commits_steps_aside_for_a_waiting_operation(
    stores, bus, write_engine, fresh_services
):
    # Caught up, a follower keeps the lock for the rest of its follow and waits for the next commit; an operation
    # (a dead letter's retry, a switch) waiting for the lock meanwhile must not wait out the follow.
    projection = Busy(replace(stores, namespace=f"{NAMESPACE}_idle"), bus, 0)
    await projection.drop()
    notices = Notices(listen_dsn(fresh_services))
    idle = asyncio.Event()
    wait_past = notices.wait_past

    async def waiting_for_commits(*args, **kwargs) -> bool:
        idle.set()
        return await wait_past(*args, **kwargs)

    notices.wait_past = waiting_for_commits  # type: ignore[method-assign]
    running = asyncio.create_task(follow(write_engine, projection, 1_000, Policy(), notices, seconds=600))
    try:
        await asyncio.wait_for(idle.wait(), 60)
        async with exclusively(write_engine, projection.label, wait=20):  # ProjectionBusy if it waited the follow out
            progress = await asyncio.wait_for(running, 10)
    finally:
        notices.stop()
        await asyncio.wait_for(asyncio.gather(running, return_exceptions=True), 30)
        await notices.close()
    assert progress.stepped_aside and not progress.halted


async def _true(value: bool) -> bool:
    return value

"""A waiting operation gets a projection's lock even while catch-ups keep asking for it."""

from __future__ import annotations

import asyncio

from tests.conftest import eventually
from workers.locks import awaited, exclusively, projection_lock


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

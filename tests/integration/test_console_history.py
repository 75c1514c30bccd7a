"""The console's history: one process samples a round, the history stays within its window, and the data answer
charts versions (a partition's lag is in the status, not in the series)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import delete, func, insert, select

from infra.console import history
from projections.registry import PROJECTIONS
from write.schema import console_samples, console_state


async def _rounds(write_engine) -> int:
    async with write_engine.connect() as conn:
        return (await conn.execute(select(func.count(func.distinct(console_samples.c.at))))).scalar()


async def test_one_process_samples_a_round_and_the_rest_skip_it(write_engine, stores, settings, tenant):
    async with write_engine.begin() as conn:
        await conn.execute(delete(console_samples))
    taken = await asyncio.gather(*(history.sample(write_engine, stores, settings) for _ in range(4)))
    assert sorted(taken) == [False, False, False, True]
    assert await _rounds(write_engine) == 1
    assert not await history.sample(write_engine, stores, settings)  # less than a round since the last one
    slow = settings.model_copy(update={"console_sample_seconds": 0.001})
    assert await history.sample(write_engine, stores, slow)
    assert await _rounds(write_engine) == 2

    answer = orjson.loads(await history.Overview().answer(write_engine, settings))
    status = answer["status"]
    assert {row["projection"] for row in status["projections"]} >= set(PROJECTIONS)
    assert tenant in {t["tenant"] for t in status["tenants"]}
    assert all(problem is None for problem in status["stores"].values())
    assert set(answer["series"]) >= set(PROJECTIONS) and all(len(s["t"]) == 2 for s in answer["series"].values())


async def test_the_history_keeps_its_window_only(write_engine, stores, settings):
    old = datetime.now(UTC) - timedelta(seconds=settings.console_history_seconds + 60)
    async with write_engine.begin() as conn:
        await conn.execute(
            insert(console_samples),
            [{"at": old, "label": "order_summaries", "checkpoint": 1, "head": 1, "lag_events": 0, "lag_seconds": 0}],
        )
        await conn.execute(insert(console_state).values(key="host:gone-long-ago", at=old, body={"processes": []}))
    assert await history.sample(write_engine, stores, settings.model_copy(update={"console_sample_seconds": 0.001}))
    async with write_engine.connect() as conn:
        oldest = (await conn.execute(select(func.min(console_samples.c.at)))).scalar()
        hosts = (await conn.execute(select(console_state.c.key))).scalars().all()
    assert oldest > old and "host:gone-long-ago" not in hosts


async def test_partitions_are_in_the_status_not_in_the_charts(write_engine, stores, settings):
    assert await history.sample(write_engine, stores, settings.model_copy(update={"console_sample_seconds": 0.001}))
    overview = history.Overview()
    before = orjson.loads(await overview.answer(write_engine, settings))
    status = before["status"]
    status["projections"] += [
        {"projection": "order_search@v7", "partition": "all"},
        {"projection": "order_search@v7", "partition": "1of2"},
    ]
    now = datetime.now(UTC)
    rows = [
        {"at": now, "label": label, "checkpoint": 5, "head": 9, "lag_events": 4, "lag_seconds": 0.5}
        for label in ("order_search@v7", "order_search@v7/1of2", "order_search@v7/2of2")
    ]
    async with write_engine.begin() as conn:
        await conn.execute(insert(console_samples), rows)
        await conn.execute(
            console_state.update()
            .where(console_state.c.key == history.STATUS_KEY)
            .values(body={**status, "sampled_at": 1.0})
        )
    series = orjson.loads(await overview.answer(write_engine, settings))["series"]
    assert series["order_search@v7"]["lag_events"][-1] == 4  # a new sample: the series read again
    assert not [label for label in series if "/" in label]
    assert "order_search@v7" not in before["series"]

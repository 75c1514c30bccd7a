"""The console's history: one process samples a round, the history stays within its window, the data answer charts
versions, and a version's partitions are charted on demand."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import orjson
import pytest
from sqlalchemy import delete, func, insert, select

from infra.console import history, hosts
from infra.ops.status import ProjectionStatus
from projections.registry import PROJECTIONS
from write import event_log, partitions
from write.commands import RegisterTenant
from write.partitions import Partition
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


async def test_the_series_are_read_again_when_a_sample_lands(write_engine, stores, settings):
    assert await history.sample(write_engine, stores, settings.model_copy(update={"console_sample_seconds": 0.001}))
    overview = history.Overview()
    before = orjson.loads(await overview.answer(write_engine, settings))
    status = before["status"]
    now = datetime.now(UTC)
    rows = [{"at": now, "label": "order_search@v7", "checkpoint": 5, "head": 9, "lag_events": 4, "lag_seconds": 0.5}]
    async with write_engine.begin() as conn:
        await conn.execute(insert(console_samples), rows)
        await conn.execute(
            console_state.update()
            .where(console_state.c.key == history.STATUS_KEY)
            .values(
                body={**status, "sampled_at": 1.0, "projections": [*status["projections"], _row("order_search@v7")]}
            )
        )
    series = orjson.loads(await overview.answer(write_engine, settings))["series"]
    assert series["order_search@v7"]["lag_events"][-1] == 4  # a new sample: the series read again
    assert "order_search@v7" not in before["series"]


async def test_a_versions_partitions_are_charted_apart_from_the_versions(write_engine, settings):
    now = datetime.now(UTC)
    labels = [
        "order_search@v9",
        "order_search@v9/1of2",
        "order_search@v9/2of2",
        "order_search@v90",
        "order_search@v90/1of2",
    ]
    rows = [
        {"at": now, "label": label, "checkpoint": 5, "head": 9, "lag_events": 4, "lag_seconds": 0.5} for label in labels
    ]
    async with write_engine.begin() as conn:
        await conn.execute(insert(console_samples), rows)
        status = {"sampled_at": now.timestamp(), "every": 2, "projections": [_row(label) for label in labels]}
        await hosts.put(conn, history.STATUS_KEY, status)

    overview = history.Overview()
    assert sorted(orjson.loads(await overview.answer(write_engine, settings))["series"]) == [
        "order_search@v9",
        "order_search@v90",
    ]
    parts = orjson.loads(await overview.partitions(write_engine, settings, "order_search@v9"))["series"]
    assert sorted(parts) == ["order_search@v9/1of2", "order_search@v9/2of2"]  # not those of order_search@v90
    assert parts["order_search@v9/2of2"]["lag_events"] == [4] and parts["order_search@v9/2of2"]["lag_seconds"] == [0.5]
    assert parts["order_search@v9/2of2"]["t"] == [pytest.approx(now.timestamp(), abs=0.001)]
    assert orjson.loads(await overview.partitions(write_engine, settings, "order_search"))["series"] == {}  # not split


async def test_a_series_read_as_a_new_sample_lands_is_not_kept_for_the_new_one(write_engine, settings, monkeypatch):
    """Two answers of one process: the first reads its sample's series while the next sample lands and a second
    answer reads that one's. The first's series must not be kept for the newer sample."""
    now = datetime.now(UTC)
    rows = [{"at": now, "label": v, "checkpoint": 5, "head": 9, "lag_events": 4, "lag_seconds": 0.5} for v in LANDING]
    async with write_engine.begin() as conn:
        await conn.execute(insert(console_samples), rows)
        await hosts.put(conn, history.STATUS_KEY, {"sampled_at": 1.0, "projections": [_row(LANDING[0])]})
    overview, read = history.Overview(), history._series
    reads: list[list[str]] = []

    async def landing_meanwhile(conn, settings, labels):
        reads.append(labels)
        found = await read(conn, settings, labels)
        if len(reads) == 1:  # the next sample lands, and another answer reads it, before this read ends
            async with write_engine.begin() as other:
                await hosts.put(other, history.STATUS_KEY, {"sampled_at": 2.0, "projections": [_row(LANDING[1])]})
            assert set(orjson.loads(await overview.answer(write_engine, settings))["series"]) == {LANDING[1]}
        return found

    monkeypatch.setattr(history, "_series", landing_meanwhile)
    assert set(orjson.loads(await overview.answer(write_engine, settings))["series"]) == {LANDING[0]}
    assert set(orjson.loads(await overview.answer(write_engine, settings))["series"]) == {LANDING[1]}
    assert reads == [[LANDING[0]], [LANDING[1]]]  # the newer sample's series, kept: not read a third time


#: Two versions, each the only one of a sample.
LANDING = ["order_search@v11", "order_search@v12"]


def _row(label: str) -> dict:
    """A status row of the label's version or partition, as the sampler writes it (the fields the series read)."""
    partition = label.partition("/")[2]
    return {"projection": label, "partition": partition or None}


async def test_a_tenant_lags_only_behind_the_partitions_that_hold_it(write_engine, bus, tenant_id):
    """Two tenants in the two halves of a version split in two: one half caught up, the other behind by the second
    tenant's last event. Only the second tenant shows lag."""
    others = [f"{tenant_id}-{n}" for n in range(40)]
    split = Partition(0, 2), Partition(1, 2)
    first = next(t for t in others if partitions.of(t, 2) == split[0])
    second = next(t for t in others if partitions.of(t, 2) == split[1])
    for tenant in (first, second):
        await bus.execute(RegisterTenant(tenant, "Shop"))
    async with write_engine.connect() as conn:
        head = await event_log.head(conn)
    rows = [
        ProjectionStatus(f"order_search/{p}", "live", 1, checkpoint, head, 0, 0.0, partition=str(p), role="live")
        for p, checkpoint in ((split[0], head), (split[1], head - 1))
    ]
    shown = {row.projection: SimpleNamespace(partition=p) for row, p in zip(rows, split, strict=True)}
    async with write_engine.connect() as conn:
        tenants = {t["tenant"]: t for t in await history._tenants(conn, rows, shown, {})}  # type: ignore[arg-type]
    assert tenants[second]["lag_events"] == 1 and tenants[first]["lag_events"] == 0


def test_the_slowest_checkpoint_covers_each_bucket_once():
    live = [((0, 512), 10), ((512, 1024), 20), ((0, 1024), 15)]
    assert history._slowest(live) == [(0, 512, 10), (512, 1024, 15)]

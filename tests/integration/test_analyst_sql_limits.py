"""The analysts' SQL limits (time, memory, bytes, queries in flight), on the real engine with small limits."""

from __future__ import annotations

import asyncio
import time
from datetime import date

import pytest

from projections.layouts.order_analytics import Tables
from readers.analytics_sql import AnalystSql, Limits, SqlFailed, TooManyQueries
from readers.order_analytics import DateRange, _query, revenue_sql
from tests.conftest import SLOW_SQL, eventually, p99


@pytest.fixture
def analyst(fresh_services, stores, projections):
    return AnalystSql(
        stores,
        fresh_services.clickhouse_url,
        str(fresh_services.chdb_path),
        Limits(seconds=0.5, rows=100, memory_bytes=32 * 1024 * 1024),
    )


async def test_a_query_running_past_the_time_limit_is_stopped(analyst, tenant):
    with pytest.raises(SqlFailed, match=r"(?i)timeout|time limit|estimated query execution time"):
        await analyst.run(
            tenant,
            "SELECT sum(a * b * c) FROM (SELECT arrayJoin(range(1000)) AS a) AS x "
            "CROSS JOIN (SELECT arrayJoin(range(1000)) AS b) AS y "
            "CROSS JOIN (SELECT arrayJoin(range(1000)) AS c) AS z",
        )


async def test_a_query_needing_more_than_the_memory_limit_is_stopped(analyst, tenant):
    with pytest.raises(SqlFailed, match=r"(?i)memory limit"):
        await analyst.run(
            tenant, "SELECT length(groupArray(toString(a))) FROM (SELECT arrayJoin(range(20000000)) AS a)"
        )


async def test_a_limited_query_still_answers_within_its_limits(analyst, tenant):
    answer = await analyst.run(tenant, "SELECT count() AS n FROM orders")
    assert answer.columns == ["n"] and answer.rows == [[0]]


async def test_a_result_past_the_byte_cap_is_stopped_quickly(fresh_services, stores, projections, tenant):
    capped = AnalystSql(
        stores,
        fresh_services.clickhouse_url,
        str(fresh_services.chdb_path),
        Limits(seconds=30, rows=10_000, bytes=10_000_000),
    )
    try:
        started = time.monotonic()
        with pytest.raises(SqlFailed, match=r"larger than 10,000,000 bytes"):  # 1,000 rows of 100 kB: 100 MB
            await capped.run(tenant, "SELECT repeat('x', 100000) AS blob FROM (SELECT arrayJoin(range(1000)) AS a)")
        assert time.monotonic() - started < 5
        under = await capped.run(tenant, "SELECT repeat('x', 100000) AS blob FROM (SELECT arrayJoin(range(50)) AS a)")
        assert len(under.rows) == 50 and len(under.rows[0][0]) == 100_000  # 5 MB: under the cap
    finally:
        capped.close()


async def _timed(call) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


async def test_a_tenant_runs_at_most_its_share_and_the_readers_stay_fast(fresh_services, stores, projections, tenant):
    fair = AnalystSql(
        stores,
        fresh_services.clickhouse_url,
        str(fresh_services.chdb_path),
        Limits(seconds=4, concurrent=2, concurrent_total=4, queue_seconds=1.0),
    )
    tables, period = Tables(stores.namespace), DateRange(date(2020, 1, 1), date(2100, 1, 1))

    async def canned() -> None:  # what GET /analytics/revenue runs, on asyncio's shared pool
        await _query(stores, revenue_sql(tables, "day"), period.parameters(tenant))

    async def ready() -> None:  # what GET /ready asks of Redis and ClickHouse
        await stores.redis.ping()
        await asyncio.to_thread(stores.clickhouse.command, "SELECT 1")

    probes = {"canned analytics": canned, "readiness": ready}
    for probe in probes.values():  # warm: the first call of each pays for connections and caches
        await probe()
    idle = {name: [await _timed(probe) for _ in range(60)] for name, probe in probes.items()}
    try:
        runs = [asyncio.create_task(fair.run(tenant, SLOW_SQL)) for _ in range(6)]

        async def two_running() -> bool:
            return fair.admission.in_flight(tenant) == 2

        await eventually(two_running, 5, "two of the tenant's queries running")
        loaded: dict[str, list[float]] = {name: [] for name in probes}
        peak = 0
        while fair.admission.in_flight(tenant) and len(loaded["readiness"]) < 100:
            peak = max(peak, fair.admission.in_flight(tenant))
            for name, probe in probes.items():
                loaded[name].append(await _timed(probe))
        outcomes = await asyncio.gather(*runs, return_exceptions=True)
    finally:
        fair.close()
    refused = [o for o in outcomes if isinstance(o, TooManyQueries)]
    stopped = [o for o in outcomes if isinstance(o, SqlFailed)]
    assert (len(refused), len(stopped), peak) == (4, 2, 2), outcomes
    assert all(r.http_status == 429 and r.headers == {"Retry-After": "4"} for r in refused)
    assert all("timeout" in s.message.lower() or "time limit" in s.message.lower() for s in stopped), stopped
    for name in probes:
        print(
            f"{name}: idle p99 {p99(idle[name]) * 1000:.1f} ms, loaded p99 {p99(loaded[name]) * 1000:.1f} ms "
            f"({len(loaded[name])} samples while loaded)"
        )
        print(
            "   slowest idle",
            [round(v * 1000, 1) for v in sorted(idle[name])[-4:]],
            "slowest loaded",
            [round(v * 1000, 1) for v in sorted(loaded[name])[-4:]],
        )
        assert len(loaded[name]) >= 10
        assert p99(loaded[name]) <= 2 * p99(idle[name]) + 0.050, name

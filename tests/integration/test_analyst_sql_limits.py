"""The analyst SQL guard's time and memory limits, on the real engine with small limits."""

from __future__ import annotations

import pytest

from readers.analytics_sql import AnalystSql, Limits, SqlFailed


@pytest.fixture
def analyst(fresh_services, stores, projections):
    return AnalystSql(stores, fresh_services.clickhouse_url, str(fresh_services.chdb_path),
                      Limits(seconds=0.5, rows=100, memory_bytes=32 * 1024 * 1024))


async def test_a_query_running_past_the_time_limit_is_stopped(analyst, tenant):
    with pytest.raises(SqlFailed, match="(?i)timeout|time limit|estimated query execution time"):
        await analyst.run(tenant, "SELECT sum(a * b * c) FROM (SELECT arrayJoin(range(1000)) AS a) AS x "
                                  "CROSS JOIN (SELECT arrayJoin(range(1000)) AS b) AS y "
                                  "CROSS JOIN (SELECT arrayJoin(range(1000)) AS c) AS z")


async def test_a_query_needing_more_than_the_memory_limit_is_stopped(analyst, tenant):
    with pytest.raises(SqlFailed, match="(?i)memory limit"):
        await analyst.run(tenant, "SELECT length(groupArray(toString(a))) FROM "
                                  "(SELECT arrayJoin(range(20000000)) AS a)")


async def test_a_limited_query_still_answers_within_its_limits(analyst, tenant):
    answer = await analyst.run(tenant, "SELECT count() AS n FROM orders")
    assert answer.columns == ["n"] and answer.rows == [[0]]

"""The canned analytics queries run on the readers' own ClickHouse clients, not behind the projection's."""

from __future__ import annotations

import asyncio

from projections.layouts.order_analytics import Tables
from readers.order_analytics import DateRange, _query, revenue_sql
from tests.conftest import NAMESPACE, eventually

_MARK = "held_by_the_projection"


async def test_a_canned_query_answers_while_the_projections_client_runs_a_statement(stores, projections):
    # chDB runs one statement at a time per client: a reader on the projection's client would wait for this one.
    busy = asyncio.create_task(asyncio.to_thread(stores.clickhouse.query, f"SELECT sleep(2) AS {_MARK}"))

    async def running() -> bool:
        found = await _query(
            stores,
            "SELECT count() FROM system.processes WHERE query LIKE %(mark)s AND query NOT LIKE '%%system.processes%%'",
            {"mark": f"%{_MARK}%"},
        )
        return found[0][0] == 1

    await eventually(running, timeout=2.0, what="the projection's statement running")
    rows = await _query(stores, revenue_sql(Tables(NAMESPACE), "day"), DateRange.last_days(7).parameters("t-nobody"))

    assert rows == []
    assert not busy.done(), "the reader's query waited for the projection's statement"
    await busy

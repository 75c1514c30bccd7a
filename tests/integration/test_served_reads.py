"""A reader's statement on the dashboards database is one round trip: sent on the driver's connection outside a
transaction (no BEGIN and ROLLBACK around it), its rows read by column name or index."""

from __future__ import annotations

from infra import bootstrap
from projections.layouts.postgres_views import query_served


async def test_a_served_read_sends_its_statement_alone(fresh_services):
    stores = await bootstrap.open_stores(fresh_services.model_copy(update={"database_pool_size": 1}), ("dashboards",))
    sent: list[str] = []
    try:
        async with stores.dashboards.connect() as conn:  # the pool's one connection, watched
            driver = (await conn.get_raw_connection()).driver_connection
            driver.add_query_logger(lambda record: sent.append(record.query))
        rows = await query_served(
            stores.dashboards, "SELECT CAST(:n AS int) AS n, CAST(:s AS text) AS s", {"s": "x", "n": 7}
        )
        assert [(row.n, row.s, row[0]) for row in rows] == [(7, "x", 7)]
        assert sent == ["SELECT CAST($1 AS int) AS n, CAST($2 AS text) AS s"], f"the read sent {sent}"
    finally:
        await bootstrap.close_stores(stores)

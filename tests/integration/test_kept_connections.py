"""A serving process's Postgres pools keep what they open: a burst past the pool waits for a connection rather than
opening more and closing them after, which would make every later burst pay the logins again."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event

from infra import bootstrap

KEPT, BURST = 4, 12


async def _write(settings):
    return bootstrap.write_engine(settings), None


async def _dashboards(settings):
    stores = await bootstrap.open_stores(settings, only=("dashboards",))
    return stores.dashboards, stores


@pytest.mark.parametrize("open_engine", [_write, _dashboards], ids=["write model", "dashboards"])
async def test_bursts_past_the_pool_log_in_no_more_than_it_keeps(fresh_services, open_engine):
    engine, stores = await open_engine(fresh_services.model_copy(update={"database_pool_size": KEPT}))
    logins: list[object] = []
    event.listen(engine.sync_engine, "connect", lambda connection, _record: logins.append(connection))

    async def hold() -> None:
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SELECT pg_sleep(0.05)")

    try:
        for _ in range(3):
            await asyncio.gather(*(hold() for _ in range(BURST)))
        assert len(logins) == KEPT, f"{len(logins)} logins for {3 * BURST} uses of a pool that keeps {KEPT}"
    finally:
        if stores is not None:
            await bootstrap.close_stores(stores)
        else:
            await engine.dispose()

"""Kept Postgres connections are pinged only after a quiet spell: a connection back in the pool a moment ago goes
straight to work (no extra round trips per request), and one that died while idle is replaced before use."""

from __future__ import annotations

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from infra import bootstrap
from infra.bootstrap import asyncpg_dsn
from projections.stores.postgres import ping_when_idle
from tests.conftest import eventually


async def _backend_pid(engine: AsyncEngine, sent: list[str] | None = None) -> int:
    async with engine.connect() as conn:
        if sent is not None:
            driver = (await conn.get_raw_connection()).driver_connection
            driver.add_query_logger(lambda record: sent.append(record.query))
        return (await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one()


async def _terminate(url: str, pid: int) -> None:
    admin = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", pid)

        async def gone() -> bool:
            return not await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)

        await eventually(gone, 10, f"backend {pid} gone")
    finally:
        await admin.close()


async def test_a_connection_used_a_moment_ago_sends_only_the_statement(fresh_services):
    engine = bootstrap.write_engine(fresh_services, pool_size=1)
    sent: list[str] = []
    try:
        await _backend_pid(engine, sent)
        sent.clear()
        await _backend_pid(engine)
        # asyncpg logs the statements it sends unprepared: here the transaction's BEGIN and ROLLBACK around the
        # (prepared) SELECT. SQLAlchemy's pre-ping would add its own BEGIN, ';' and ROLLBACK before them.
        assert sent == ["BEGIN;", "ROLLBACK;"], f"a hot checkout sent {sent}"
    finally:
        await engine.dispose()


async def test_a_live_connection_idle_past_the_spell_is_pinged_and_kept(fresh_services):
    url = fresh_services.write_database_url
    engine = ping_when_idle(create_async_engine(url, pool_size=1, max_overflow=0), idle_seconds=0.0)
    sent: list[str] = []
    try:
        first = await _backend_pid(engine, sent)
        sent.clear()
        # A ping that failed on a live connection would replace it: a new login (and its CPU) at every checkout.
        assert await _backend_pid(engine) == first
        assert sent[0] == "SELECT 1", f"the idle checkout sent {sent}"
    finally:
        await engine.dispose()


async def test_a_connection_that_died_while_idle_is_replaced_before_use(fresh_services):
    url = fresh_services.write_database_url
    engine = ping_when_idle(create_async_engine(url, pool_size=1, max_overflow=0), idle_seconds=0.0)
    try:
        first = await _backend_pid(engine)
        await _terminate(url, first)
        second = await _backend_pid(engine)  # without the ping: ConnectionDoesNotExistError on the dead one
        assert second != first
    finally:
        await engine.dispose()

"""Setting a dashboards projection up while a batch writes its tables: every process of ``prism serve`` sets up the
projections it serves at start, beside workers that may be in the middle of a batch. A set-up that finds its layout
complete takes no table lock, so it neither waits behind the batch nor holds the next one up (two such waits, on
tables taken in another order, deadlocked and failed a process's start)."""

from __future__ import annotations

import asyncio
import re

import pytest

from projections.customer_dashboards import CustomerDashboards
from projections.layouts import postgres_views
from projections.shipping_dashboard import ShippingDashboard


@pytest.mark.parametrize("kind", [CustomerDashboards, ShippingDashboard])
async def test_a_complete_layout_is_set_up_again_beside_an_open_batch(stores, projections, kind):
    projection = kind(stores)
    await projection.setup()
    written = [_named(sql) for sql in projection.tables.ddl() if _named(sql)]  # the tables its DDL would lock
    assert written
    async with stores.dashboards.connect() as batch:
        await batch.begin()
        for table in dict.fromkeys(written):  # a batch's lock on each
            await batch.execute(postgres_views.statement(f"LOCK TABLE {table} IN ROW EXCLUSIVE MODE"))
        await asyncio.wait_for(projection.setup(), 5)  # did not wait behind the batch
        await batch.rollback()


def _named(sql: str) -> str | None:
    """The table an ``ALTER TABLE`` or ``CREATE INDEX`` of a layout's DDL names."""
    found = re.match(r"ALTER TABLE (\S+)|CREATE (?:UNIQUE )?INDEX IF NOT EXISTS \S+ ON (\S+)", sql)
    return (found[1] or found[2]) if found else None


async def test_without_the_remedy_a_set_up_waits_behind_the_batch(stores, projections, monkeypatch):
    async def nothing_there(conn, sql):
        return False

    monkeypatch.setattr(postgres_views, "_already_there", nothing_there)
    projection = CustomerDashboards(stores)
    async with stores.dashboards.connect() as batch:
        await batch.begin()
        await batch.execute(
            postgres_views.statement(f"LOCK TABLE {projection.tables.dashboards} IN ROW EXCLUSIVE MODE")
        )
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(projection.setup(), 2)
        await batch.rollback()

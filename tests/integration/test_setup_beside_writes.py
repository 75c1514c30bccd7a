"""Setting a dashboards projection up while a batch writes its tables: every process of ``prism serve`` sets up the
projections it serves at start, beside workers that may be in the middle of a batch. A set-up that finds its layout
complete takes no table lock, so it neither waits behind the batch nor holds the next one up (two such waits, on
tables taken in another order, deadlocked and failed a process's start)."""

from __future__ import annotations

import asyncio

import pytest

from projections.customer_dashboards import CustomerDashboards
from projections.layouts import postgres_views
from projections.shipping_dashboard import ShippingDashboard


@pytest.mark.parametrize("kind", [CustomerDashboards, ShippingDashboard])
async def test_a_complete_layout_is_set_up_again_beside_an_open_batch(stores, projections, kind):
    projection = kind(stores)
    await projection.setup()
    table = projection.tables.orders
    async with stores.dashboards.connect() as batch:
        await batch.begin()
        await batch.execute(postgres_views.statement(f"LOCK TABLE {table} IN ROW EXCLUSIVE MODE"))  # a batch's lock
        await asyncio.wait_for(projection.setup(), 5)  # did not wait behind the batch
        await batch.rollback()


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

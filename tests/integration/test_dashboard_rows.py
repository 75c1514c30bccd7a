"""A dashboard row holds what the dashboard shows, equal to computing it from the source rows at read time, through
redelivered and reordered batches, renames, forgotten orders, and for a version made by an older release."""

from __future__ import annotations

import copy
import json
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from projections import base
from projections.base import Batch
from projections.customer_dashboards import CustomerDashboards
from projections.layouts.customer_dashboards import SHOWN_COLUMNS, Tables
from readers.customer_dashboards import dashboard_sql, last_months
from tests.conftest import NAMESPACE
from tests.integration.test_projection_contract import batches_of, delivery, fresh, handled
from write import events as e


def read_time_sql(t: Tables) -> str:
    """How the dashboard was computed at read time from the source rows (spend over the last 12 months)."""
    month = "date_trunc('month', now() AT TIME ZONE 'UTC')"
    return f"""
        SELECT d.customer_id,
          (SELECT json_agg(m ORDER BY m.month) FROM (
             SELECT to_char(g.month, 'YYYY-MM') AS month, count(o.order_id) AS orders,
                    coalesce(sum(o.total), 0)::text AS spend
             FROM generate_series({month} - interval '11 months', {month}, interval '1 month') AS g(month)
             LEFT JOIN {t.orders} o ON o.customer_id = d.customer_id AND o.status <> 'cancelled'
               AND o.placed_at >= (g.month AT TIME ZONE 'UTC')
               AND o.placed_at < ((g.month + interval '1 month') AT TIME ZONE 'UTC')
             GROUP BY g.month) m) AS spend_by_month,
          (SELECT coalesce(json_agg(p), '[]') FROM (
             SELECT l.product_id::text AS product_id, coalesce(max(pr.name), '') AS name,
                    sum(l.quantity)::int AS quantity, sum(l.line_total)::text AS revenue
             FROM {t.lines} l JOIN {t.orders} o ON o.order_id = l.order_id AND o.status <> 'cancelled'
             LEFT JOIN {t.products} pr ON pr.product_id = l.product_id
             WHERE l.customer_id = d.customer_id
             GROUP BY l.product_id ORDER BY sum(l.line_total) DESC, l.product_id LIMIT 5) p) AS top_products,
          (SELECT row_to_json(x) FROM (
             SELECT order_id::text AS order_id, status, total::text AS total, placed_at
             FROM {t.orders} WHERE customer_id = d.customer_id ORDER BY placed_at DESC LIMIT 1) x) AS last_order
        FROM {t.dashboards} d WHERE d.tenant_id = :t ORDER BY d.customer_id"""


def months_apart(events):
    """The history's orders spread over the last four months (an order's every event says the same)."""
    orders = sorted({ev.payload["order"]["order_id"] for ev in events if "order" in ev.payload})
    shift = {order_id: timedelta(days=31 * (n % 4)) for n, order_id in enumerate(orders)}
    moved = []
    for ev in events:
        if "order" in ev.payload:
            payload = copy.deepcopy(ev.payload)
            placed = datetime.fromisoformat(payload["order"]["placed_at"]) - shift[payload["order"]["order_id"]]
            payload["order"]["placed_at"] = placed.isoformat()
            ev = replace(ev, payload=payload)
        moved.append(ev)
    return moved


def counts_sql(t: Tables) -> str:
    """The counts and sums, from the source rows."""
    return f"""
        SELECT c.customer_id, count(o.order_id), count(o.order_id) FILTER (WHERE o.status = 'pending'),
               count(o.order_id) FILTER (WHERE o.status = 'confirmed'),
               count(o.order_id) FILTER (WHERE o.status = 'shipped'),
               count(o.order_id) FILTER (WHERE o.status = 'cancelled'),
               coalesce(sum(o.total) FILTER (WHERE o.status <> 'cancelled'), 0)::numeric(20, 2)::text,
               coalesce(round(avg(o.total) FILTER (WHERE o.status <> 'cancelled'), 2), 0)::numeric(20, 2)::text,
               max(o.placed_at)
        FROM {t.customers} c LEFT JOIN {t.orders} o ON o.customer_id = c.customer_id
        WHERE c.tenant_id = :t GROUP BY c.customer_id ORDER BY c.customer_id"""


async def _compare(projection: CustomerDashboards, tenant: str) -> int:
    t, now = projection.tables, datetime.now(UTC)
    async with projection.engine.connect() as conn:
        counted = (await conn.execute(text(counts_sql(t)), {"t": tenant})).all()
        kept = (
            await conn.execute(
                text(
                    f"SELECT customer_id, order_count, pending_count, confirmed_count, shipped_count, cancelled_count, "
                    f"lifetime_value::text, average_order_value::text, last_order_at FROM {t.dashboards} "
                    "WHERE tenant_id = :t ORDER BY customer_id"
                ),
                {"t": tenant},
            )
        ).all()
        assert [tuple(r) for r in kept] == [tuple(r) for r in counted]
        expected = (await conn.execute(text(read_time_sql(t)), {"t": tenant})).all()
        stored = {}
        for row in expected:
            found = (
                await conn.execute(
                    text(dashboard_sql(t).replace(t.served, t.dashboards)), {"c": row.customer_id, "t": tenant}
                )
            ).one()
            stored[row.customer_id] = found
    for row in expected:
        kept = stored[row.customer_id]
        last = kept.last_order and {
            **kept.last_order,
            "placed_at": datetime.fromisoformat(kept.last_order["placed_at"]),
        }
        wanted_last = {**row.last_order, "placed_at": datetime.fromisoformat(row.last_order["placed_at"])}
        assert last_months(kept.spend_by_month, now) == _json(row.spend_by_month), row.customer_id
        assert kept.top_products == _json(row.top_products), row.customer_id
        assert last == wanted_last, row.customer_id
    return len(expected)


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_the_row_holds_what_read_time_sql_computes(seed, stores, tenant_events, tenant):
    events = months_apart(tenant_events)
    projection = await fresh("customer_dashboards", stores, f"{NAMESPACE}_rows")
    assert isinstance(projection, CustomerDashboards)
    for batch in delivery(events, random.Random(seed)):  # some twice, all in random order
        await projection.apply(handled(projection, batch))
    assert await _compare(projection, tenant) == 3
    async with projection.engine.connect() as conn:
        names = await conn.execute(text(f"SELECT top_products FROM {projection.tables.dashboards}"))
        assert any(p["name"] == "Widget Pro" for row in names.scalars() for p in row)  # the rename reached them

    orders = sorted({ev.payload["order"]["order_id"] for ev in events if "order" in ev.payload})
    await projection.forget(orders[:4], [])
    assert await _compare(projection, tenant) == 3


async def test_a_rename_reaches_the_rows_showing_the_product(stores, tenant_events, tenant):
    events = months_apart(tenant_events)
    renames = [ev for ev in events if ev.type == e.PRODUCT_RENAMED]
    assert renames
    projection = await fresh("customer_dashboards", stores, f"{NAMESPACE}_rows")
    await projection.apply(handled(projection, Batch([ev for ev in events if ev not in renames], 0)))
    await projection.apply(handled(projection, Batch(renames, events[-1].position)))  # a batch of renames alone
    assert await _compare(projection, tenant) == 3


async def test_a_version_made_by_an_older_release_gets_its_sums_and_lists(stores, tenant_events, tenant):
    projection = await fresh("customer_dashboards", stores, f"{NAMESPACE}_rows")
    await projection.apply(handled(projection, Batch(months_apart(tenant_events), tenant_events[-1].position)))
    t = projection.tables
    async with projection.engine.begin() as conn:  # what an older release left: no sums, no lists
        await conn.execute(text(f"DROP TABLE {t.months}, {t.bought}"))
        await conn.execute(text(f"DROP VIEW {t.served}"))
        await conn.execute(
            text(
                f"ALTER TABLE {t.dashboards} "
                + ", ".join(f"DROP COLUMN {column.split()[0]}" for column in SHOWN_COLUMNS)
            )
        )
        await conn.execute(text(f"CREATE VIEW {t.served} AS SELECT * FROM {t.dashboards}"))

    await projection.setup()
    assert await _compare(projection, tenant) == 3
    async with projection.engine.connect() as conn:  # the served view shows the new columns
        shown = await conn.execute(text(f"SELECT top_products FROM {t.served} LIMIT 1"))
        assert shown.scalar() is not None


async def test_a_catch_up_shows_the_rows_and_moves_the_checkpoint_when_it_settles(
    stores, tenant_events, tenant, monkeypatch
):
    monkeypatch.setattr(base, "DEFERRED_SECONDS", 600.0)  # however slow the machine, nothing falls due here
    events = months_apart(tenant_events)
    projection = await fresh("customer_dashboards", stores, f"{NAMESPACE}_rows")
    for batch in batches_of(events, 4):
        await projection.apply(replace(handled(projection, batch), more=True))
    assert await projection.checkpoint() == 0  # held back with the lists it has not rebuilt
    async with projection.engine.connect() as conn:
        shown = (await conn.execute(text(f"SELECT top_products FROM {projection.tables.dashboards}"))).scalars().all()
    assert shown and all(row == [] for row in shown)

    # A process that died now: another replays from the held-back checkpoint, the sums unchanged by the replay.
    replaying = CustomerDashboards(replace(stores, namespace=f"{NAMESPACE}_rows"), projection.version)
    for batch in batches_of(events, 4):
        await replaying.apply(replace(handled(replaying, batch), more=True))
    await replaying.settle()
    assert await replaying.checkpoint() == events[-1].position
    assert await _compare(replaying, tenant) == 3

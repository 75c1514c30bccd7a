"""A dashboard row holds what the dashboard shows, equal to computing it from the source rows at read time:
per batch once the version is served (renames reach every buyer), and in one pass for a version built beside."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from projections.customer_dashboards import CustomerDashboards
from projections.layouts.customer_dashboards import Tables
from readers.customer_dashboards import dashboard_sql, last_months
from tests.conftest import NAMESPACE
from tests.integration.test_projection_stores import batches_of, fresh, handled, tenant_events  # noqa: F401


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


async def _compare(projection: CustomerDashboards, tenant: str) -> int:
    t, now = projection.tables, datetime.now(UTC)
    async with projection.engine.connect() as conn:
        expected = (await conn.execute(text(read_time_sql(t)), {"t": tenant})).all()
        stored = {}
        for row in expected:
            found = (await conn.execute(text(dashboard_sql(t).replace(t.served, t.dashboards)),
                                        {"c": row.customer_id, "t": tenant})).one()
            stored[row.customer_id] = found
    for row in expected:
        kept = stored[row.customer_id]
        last = kept.last_order and {**kept.last_order, "placed_at": datetime.fromisoformat(kept.last_order["placed_at"])}
        wanted_last = {**row.last_order, "placed_at": datetime.fromisoformat(row.last_order["placed_at"])}
        assert last_months(kept.spend_by_month, now) == _json(row.spend_by_month), row.customer_id
        assert kept.top_products == _json(row.top_products), row.customer_id
        assert last == wanted_last, row.customer_id
    return len(expected)


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


@pytest.mark.parametrize("kept_per_batch", [True, False], ids=["served", "built beside"])
async def test_the_row_holds_what_read_time_sql_computes(kept_per_batch, stores, tenant_events, tenant):
    events = months_apart(tenant_events)
    projection = await fresh("customer_dashboards", stores, f"{NAMESPACE}_rows")
    assert isinstance(projection, CustomerDashboards)
    if not kept_per_batch:
        projection = CustomerDashboards(replace(stores, namespace=f"{NAMESPACE}_rows"), version=2)
        await projection.drop()
        await projection.setup()  # beside version 1, which the views serve
    batches = batches_of(events, 4)
    for batch in batches + batches[2:5]:  # some delivered twice, after later ones
        await projection.apply(handled(projection, batch))
    if not kept_per_batch:
        async with projection.engine.connect() as conn:
            made = await conn.execute(text(f"SELECT count(*) FROM {projection.tables.dashboards}"))
            assert made.scalar() == 0  # a build makes no rows per batch
        await projection.prepare()
    assert await _compare(projection, tenant) == 3
    async with projection.engine.connect() as conn:
        names = await conn.execute(text(f"SELECT top_products FROM {projection.tables.dashboards}"))
        assert any(p["name"] == "Widget Pro" for row in names.scalars() for p in row)  # the rename reached them

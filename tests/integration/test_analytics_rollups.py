"""The canned analytics answer from the rollups exactly what the facts answer, through redelivery, reordering and
forgetting."""

from __future__ import annotations

import copy
import random
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from projections import base
from projections.base import Batch
from projections.order_analytics import OrderAnalytics
from readers.order_analytics import PERIODS, DateRange, _query, by_hour_sql, revenue_sql, summary_sql, top_products_sql
from tests.conftest import NAMESPACE
from tests.integration.history import write_history
from tests.integration.test_projection_contract import batches_of, delivery, fresh, handled
from write import event_log
from write import events as e

#: The facts' answers, as the readers computed them before the rollups: the reference.
_IN_PERIOD = "tenant_id = %(tenant)s AND placed_at >= %(start)s AND placed_at < %(end)s"


def revenue_from_facts(t, granularity: str) -> str:
    return f"""SELECT {PERIODS[granularity]}(placed_at) AS period, count(), sum(total) FROM {t.view("orders")}
               WHERE {_IN_PERIOD} AND status != 'cancelled' GROUP BY period ORDER BY period"""


def summary_from_facts(t) -> str:
    return f"""SELECT count(), countIf(status = 'cancelled'), sumIf(total, status != 'cancelled'),
                      countIf(discount > 0 AND status != 'cancelled'), sumIf(discount, status != 'cancelled'),
                      sumIf(subtotal, status != 'cancelled')
               FROM {t.view("orders")} WHERE {_IN_PERIOD}"""


def by_hour_from_facts(t) -> str:
    return f"""SELECT toHour(placed_at) AS hour, count(), sum(total) FROM {t.view("orders")}
               WHERE {_IN_PERIOD} AND status != 'cancelled' GROUP BY hour ORDER BY hour"""


def top_products_from_facts(t, by: str) -> str:
    return f"""SELECT l.product_id AS product_id, any(p.name) AS name, sum(l.quantity) AS quantity,
                      sum(l.line_total) AS revenue
               FROM {t.view("order_lines")} AS l
               LEFT JOIN (SELECT product_id, name FROM {t.view("products")} WHERE tenant_id = %(tenant)s) AS p
                 ON p.product_id = l.product_id
               WHERE l.tenant_id = %(tenant)s AND l.status != 'cancelled'
               GROUP BY l.product_id ORDER BY {by} DESC, product_id LIMIT %(limit)s"""


def daily_orders(t) -> str:
    """What analysts' ``daily_orders`` shows: the reader's side."""
    return f"""SELECT day, status, orders, revenue, discounts FROM {t.view("daily_orders")}
               WHERE tenant_id = %(tenant)s ORDER BY day, status"""


def daily_orders_from_facts(t) -> str:
    """``daily_orders`` as the materialized view refreshed from every fact computed it."""
    return f"""SELECT toDate(placed_at) AS day, status, count(), sum(total), sum(discount) FROM {t.view("orders")}
               WHERE tenant_id = %(tenant)s GROUP BY day, status ORDER BY day, status"""


def spread_over_days(events, tenant: str):
    """The tenant's events with each order placed on a day and hour of its own over three weeks (one order's
    events keep one placing time)."""
    base, placed, spread = datetime(2026, 11, 1, tzinfo=UTC), {}, []
    rng = random.Random(7)
    for ev in events:
        if ev.tenant_id != tenant:
            continue
        if "order" in ev.payload:
            order_id = ev.payload["order"]["order_id"]
            at = placed.setdefault(order_id, base + timedelta(days=rng.randint(0, 20), hours=rng.randint(0, 23)))
            payload = copy.deepcopy(ev.payload)
            payload["order"]["placed_at"] = at.isoformat()
            ev = replace(ev, payload=payload)
        spread.append(ev)
    return spread


async def answers(projection, stores, tenant: str, reader: bool) -> dict[str, list[tuple]]:
    t = projection.tables
    whole = DateRange(date(2026, 10, 1), date(2026, 12, 1)).parameters(tenant)
    part = DateRange(date(2026, 11, 5), date(2026, 11, 12)).parameters(tenant)
    asked = {f"revenue by {g}": ((revenue_sql if reader else revenue_from_facts)(t, g), whole) for g in PERIODS}
    asked |= {
        "summary": ((summary_sql if reader else summary_from_facts)(t), whole),
        "summary of a week": ((summary_sql if reader else summary_from_facts)(t), part),
        "by hour": ((by_hour_sql if reader else by_hour_from_facts)(t), whole),
    }
    asked["daily orders"] = ((daily_orders if reader else daily_orders_from_facts)(t), {"tenant": tenant})
    asked |= {
        f"top products by {by}": (
            (top_products_sql if reader else top_products_from_facts)(t, by),
            {"tenant": tenant, "limit": 10},
        )
        for by in ("revenue", "quantity")
    }
    return {what: [tuple(row) for row in await _query(stores, sql, params)] for what, (sql, params) in asked.items()}


@pytest.fixture
async def spread(bus, tenant, write_engine):
    await write_history(bus, tenant, orders=30)
    async with write_engine.connect() as conn:
        events = await event_log.read_after(conn, 0, 1_000_000)
    return spread_over_days(events, tenant)


@pytest.mark.parametrize("seed", [1, 2])
async def test_rollup_answers_equal_the_facts_answers(stores, tenant, spread, seed):
    analytics = await fresh("order_analytics", stores, f"{NAMESPACE}_rollups")
    for batch in delivery(spread, random.Random(seed)):
        await analytics.apply(handled(analytics, batch))

    from_facts = await answers(analytics, stores, tenant, reader=False)
    assert len(from_facts["revenue by day"]) >= 10 and from_facts["summary"][0][1] > 0  # many days, cancellations
    assert await answers(analytics, stores, tenant, reader=True) == from_facts

    order_ids = sorted({ev.payload["order"]["order_id"] for ev in spread if "order" in ev.payload})
    await analytics.forget(order_ids[:5], [])
    forgotten = await answers(analytics, stores, tenant, reader=False)
    assert forgotten != from_facts
    assert await answers(analytics, stores, tenant, reader=True) == forgotten


async def test_a_version_made_before_the_rollups_gets_them_from_its_facts(stores, tenant, spread):
    analytics = await fresh("order_analytics", stores, f"{NAMESPACE}_rollups")
    await analytics.apply(Batch(handled(analytics, Batch(spread, 0)).events, spread[-1].position))
    for table in (analytics.tables.status_hours, analytics.tables.product_hours, analytics.tables.product_days):
        analytics.client.command(f"DROP TABLE {table}")

    await analytics.setup()
    assert await answers(analytics, stores, tenant, reader=True) == await answers(
        analytics, stores, tenant, reader=False
    )


async def test_a_catch_up_rolls_up_and_moves_the_checkpoint_when_it_settles(stores, tenant, spread, monkeypatch):
    monkeypatch.setattr(base, "DEFERRED_SECONDS", 600.0)  # however slow the machine, nothing falls due here
    analytics = await fresh("order_analytics", stores, f"{NAMESPACE}_rollups")
    for batch in batches_of(spread, 10):
        await analytics.apply(replace(handled(analytics, batch), more=True))
    assert await analytics.checkpoint() == 0  # held back with the rollup it has not recomputed
    unrolled = await answers(analytics, stores, tenant, reader=True)
    assert unrolled["revenue by day"] == [] and unrolled["top products by revenue"] == []

    # A process that died now: another replays from the held-back checkpoint, the facts unchanged by the replay.
    replaying = OrderAnalytics(replace(stores, namespace=f"{NAMESPACE}_rollups"), analytics.version)
    for batch in batches_of(spread, 10):
        await replaying.apply(replace(handled(replaying, batch), more=True))
    await replaying.settle()
    assert await replaying.checkpoint() == spread[-1].position
    from_facts = await answers(replaying, stores, tenant, reader=False)
    assert len(from_facts["revenue by day"]) >= 10
    assert await answers(replaying, stores, tenant, reader=True) == from_facts


async def test_a_version_served_by_the_previous_release_keeps_answering_from_its_facts(stores, tenant, spread):
    """That release refreshed daily_orders from every fact and kept order_hours in a table of its own, and had no
    hourly status or product rollups."""
    analytics = await fresh("order_analytics", stores, f"{NAMESPACE}_rollups")
    t, command = analytics.tables, analytics.client.command
    await analytics.apply(Batch(handled(analytics, Batch(spread, 0)).events, spread[-1].position))
    for table in (t.status_hours, t.product_hours, t.product_days, t.daily_orders):
        command(f"DROP TABLE {table}")
    command(f"""CREATE MATERIALIZED VIEW {t.daily_orders} REFRESH EVERY 30 SECOND
                ENGINE = MergeTree ORDER BY (tenant_id, day, status) AS
                SELECT tenant_id, toDate(placed_at) AS day, status, count() AS orders, sum(total) AS revenue,
                       sum(discount) AS discounts
                FROM {t.orders} FINAL GROUP BY tenant_id, day, status""")
    command(f"""CREATE TABLE {t.order_hours} (tenant_id LowCardinality(String), day Date32, hour UInt8,
                orders UInt64, cancelled UInt64, revenue Decimal(38, 2), discounted UInt64, discounts Decimal(38, 2),
                subtotals Decimal(38, 2), version UInt64)
                ENGINE = ReplacingMergeTree(version) ORDER BY (tenant_id, day, hour)""")
    command(f"CREATE OR REPLACE VIEW {t.view('order_hours')} AS SELECT * FROM {t.order_hours} FINAL")

    await analytics.setup()
    assert not analytics.client.command(f"EXISTS TABLE {t.order_hours}")
    database, name = t.daily_orders.split(".")
    engine = f"SELECT engine FROM system.tables WHERE database = '{database}' AND name = '{name}'"
    assert analytics.client.command(engine) == "View"  # no longer refreshed from every fact
    assert await answers(analytics, stores, tenant, reader=True) == await answers(
        analytics, stores, tenant, reader=False
    )


def placed_copy(template, position: int, at: datetime, status: str = "placed", order_id: str | None = None):
    """An order event like ``template`` (its items and amounts), for another order placed at ``at``, or with
    ``order_id`` a later event of that order moving it to ``status``."""
    payload = copy.deepcopy(template.payload)
    order = payload["order"]
    order |= {"order_id": order_id or str(uuid.uuid4()), "placed_at": at.isoformat(), "status": status}
    kind = {"placed": e.ORDER_PLACED, "cancelled": e.ORDER_CANCELLED}[status]
    return replace(template, position=position, type=kind, payload=payload, aggregate_id=uuid.UUID(order["order_id"]))


#: Orders of the tenant's day the live batch lands in: 1,000 an hour.
DAY_ORDERS = 24_000


class Statements:
    """The statements the projection's client runs, kept to be explained afterwards."""

    def __init__(self, client) -> None:
        self.client, self.run, self._command = client, [], client.command
        client.command = self.command

    def command(self, sql, *args, **kwargs):
        self.run.append(sql)
        return self._command(sql, *args, **kwargs)

    def rows_read(self, into: tuple[str, ...], of: tuple[str, ...]) -> int:
        """Rows the SELECTs of the inserts into ``into`` read from the tables ``of``, by the primary key's estimate."""
        selects = [sql[sql.index("SELECT") :] for sql in self.run if sql.split()[2] in into]
        assert selects, f"no insert into {into}"
        return sum(
            rows
            for select in selects
            for _db, table, _parts, rows, _marks in self.client.query(f"EXPLAIN ESTIMATE {select}").result_rows
            if f"{_db}.{table}" in of
        )


async def test_a_live_batch_recomputes_only_the_hours_it_touches_exactly(stores, tenant, spread):
    analytics = await fresh("order_analytics", stores, f"{NAMESPACE}_rollups")
    t = analytics.tables
    template = next(ev for ev in spread if ev.type == e.ORDER_PLACED)
    day = datetime(2026, 11, 3, tzinfo=UTC)
    held = [placed_copy(template, n + 1, day + timedelta(hours=n % 24, seconds=n // 24)) for n in range(DAY_ORDERS)]
    await analytics.apply(Batch(held, DAY_ORDERS))
    before = await answers(analytics, stores, tenant, reader=True)

    # Live: orders placed at 13:59, and an order of 09:00 cancelled, in one batch, delivered twice.
    cancelled = held[9]
    live = [placed_copy(template, DAY_ORDERS + n + 1, day + timedelta(hours=13, minutes=59)) for n in range(5)]
    live.append(
        placed_copy(
            template, DAY_ORDERS + 6, day + timedelta(hours=9), "cancelled", cancelled.payload["order"]["order_id"]
        )
    )
    statements = Statements(analytics.client)
    for _ in range(2):
        await analytics.apply(Batch(live, live[-1].position))

    after = await answers(analytics, stores, tenant, reader=True)
    assert after == await answers(analytics, stores, tenant, reader=False)
    assert after["summary"][0][:2] == (before["summary"][0][0] + 5, before["summary"][0][1] + 1)
    facts = (t.orders, t.order_lines)
    held_rows = sum(analytics.client.command(f"SELECT count() FROM {table}") for table in facts)
    read = statements.rows_read((t.status_hours, t.product_hours, t.product_days), facts)
    # Each delivery reads two hours of the day's 24, in whole granules: under a sixth of the day (a recompute of the
    # day would read all of it each time).
    assert 0 < read <= 2 * held_rows / 6, f"two deliveries read {read:,} fact rows of a day of {held_rows:,}"
    assert statements.rows_read((t.product_days,), facts) == 0  # from the hourly rollup alone

"""Which rollup rows a batch touches: the keys its recompute reads, and must cover."""

import uuid
from datetime import UTC, date, datetime

from projections.analytics_rollups import Touched, rollup_sql, touched
from projections.layouts.order_analytics import Tables
from write import events as e
from write.events import StoredEvent

A, B = str(uuid.uuid4()), str(uuid.uuid4())


def event(kind: str, payload: dict, tenant: str = "t") -> StoredEvent:
    at = datetime(2026, 11, 3, tzinfo=UTC)
    return StoredEvent(1, uuid.uuid4(), tenant, "order", uuid.uuid4(), 1, kind, 1, at, payload)


def order(placed_at: str, *products: str, status: str = "placed") -> dict:
    items = [{"line_no": n, "product_id": p} for n, p in enumerate(products, 1)]
    return {"order": {"order_id": str(uuid.uuid4()), "placed_at": placed_at, "status": status, "items": items}}


def test_a_batch_touches_the_utc_hours_its_orders_were_placed_in_and_their_products_days():
    keys = touched(
        [
            event(e.ORDER_PLACED, order("2026-11-03T23:30:00+00:00", A, B)),
            event(e.ORDER_CANCELLED, order("2026-11-04T01:10:00+02:00", A, status="cancelled")),  # 23:10 UTC
            event(e.ORDER_PLACED, order("2026-11-03T09:00:00", B), tenant="u"),  # naive: UTC
            event(e.PRODUCT_ADDED, {"product_id": A, "name": "Widget", "price": "1.00"}),
        ]
    )
    day = date(2026, 11, 3)
    assert keys.hours == {("t", day, 23), ("u", day, 9)}
    assert keys.products == {("t", day, A), ("t", day, B), ("u", day, B)}


def test_a_batch_without_orders_recomputes_nothing_and_all_keys_recompute_everything():
    tables = Tables("ns")
    assert touched([event(e.PRODUCT_ADDED, {"product_id": A, "name": "W", "price": "1.00"})]) == Touched()
    assert rollup_sql(tables, Touched()) == []
    everything = rollup_sql(tables, Touched(None, None))
    assert [sql.split()[2] for sql in everything] == [tables.status_hours, tables.product_hours, tables.product_days]
    assert not any(" IN (" in sql or "max_threads" in sql for sql in everything)  # the whole store, in parallel


def test_a_catch_up_s_many_keys_are_recomputed_by_whole_days_in_statements_the_engine_takes():
    from projections.analytics_rollups import MAX_KEYS

    days = [date(2026, 1, 1).fromordinal(date(2026, 1, 1).toordinal() + n) for n in range(90)]
    hours = {("bench0-cdf0", day, hour) for day in days for hour in range(24)}
    products = {("bench0-cdf0", day, str(uuid.uuid4())) for day in days for _ in range(200)}
    statements = rollup_sql(Tables("prism", 1), Touched(hours, products))
    assert len(hours) + len(products) > MAX_KEYS
    assert len(statements) == 3 and all(len(s) < 262_144 for s in statements)  # the engine's max_query_size
    assert all("('bench0-cdf0', '2026-01-01')" in s and "toHour(placed_at)) IN" not in s for s in statements)

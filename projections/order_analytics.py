"""Order analytics in ClickHouse: order and order-line facts, an order-events table and a product dimension.

Facts are ``ReplacingMergeTree(version)`` keyed by order (and line), with the log
position as version, so a re-applied or late batch collapses into the newest row;
the views readers query apply ``FINAL``. Each batch is one block insert per table,
with a deduplication token, and the checkpoint row goes in last.

The canned questions read two rollups, orders per tenant, day and hour and order
lines per tenant, day and product. After its facts, a batch recomputes the rollup
rows of the days it touched from the facts (never increments them, so a replayed or
redelivered batch cannot count twice); the facts are sorted by tenant and day, so
that reads only those days. In a catch-up, the recompute (and the checkpoint) waits
for a few seconds of batches and covers all their days at once (``Batch.more``).

Each version has tables of its own (``orders_v<n>``...); readers and analysts query
views with the plain names (``orders``, ``order_lines``, ``order_events``,
``products``, ``daily_orders`` and ``order_analytics_checkpoint``), which ``serve`` moves to a version
with ``EXCHANGE TABLES``, the checkpoint view last.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar

import orjson

from projections.base import Batch, Deferred, Projection, forget_and_apply, label
from projections.layouts.order_analytics import PROJECTION, VIEW_SECURITY, Tables, read_checkpoint
from projections.stores.clients import Stores
from write import events as e
from write.events import StoredEvent
from write.facts import TenantFacts

ORDER_COLUMNS = (
    "tenant_id",
    "order_id",
    "customer_id",
    "status",
    "item_count",
    "subtotal",
    "discount_percent",
    "discount",
    "total",
    "placed_at",
    "confirmed_at",
    "shipped_at",
    "cancelled_at",
    "version",
)
LINE_COLUMNS = (
    "tenant_id",
    "order_id",
    "line_no",
    "customer_id",
    "product_id",
    "quantity",
    "unit_price",
    "line_total",
    "status",
    "placed_at",
    "version",
)
EVENT_COLUMNS = ("tenant_id", "position", "order_id", "type", "status", "total", "occurred_at")
PRODUCT_COLUMNS = ("tenant_id", "product_id", "name", "price", "version")


def order_row(event: StoredEvent) -> tuple:
    o = event.payload["order"]
    return (
        event.tenant_id,
        o["order_id"],
        o["customer"]["id"],
        o["status"],
        sum(i["quantity"] for i in o["items"]),
        o["subtotal"],
        o["discount_percent"],
        o["discount"],
        o["total"],
        o["placed_at"],
        o["confirmed_at"],
        o["shipped_at"],
        o["cancelled_at"],
        event.position,
    )


def line_rows(event: StoredEvent) -> list[tuple]:
    o = event.payload["order"]
    tenant, order_id, customer, status, placed = (
        event.tenant_id,
        o["order_id"],
        o["customer"]["id"],
        o["status"],
        o["placed_at"],
    )
    return [
        (
            tenant,
            order_id,
            i["line_no"],
            customer,
            i["product_id"],
            i["quantity"],
            i["unit_price"],
            i["line_total"],
            status,
            placed,
            event.position,
        )
        for i in o["items"]
    ]


def event_row(event: StoredEvent) -> tuple:
    o = event.payload["order"]
    return (
        event.tenant_id,
        event.position,
        o["order_id"],
        event.type,
        o["status"],
        o["total"],
        event.occurred_at.isoformat(),
    )


def product_row(event: StoredEvent) -> tuple:
    p = event.payload
    return event.tenant_id, p["product_id"], p["name"], p["price"], event.position


@dataclass(frozen=True)
class Block:
    """One table's rows from a batch, as named columns: what a columnar insert sends."""

    columns: tuple[str, ...]
    rows: list[tuple]

    def as_columns(self) -> list[list[Any]]:
        return [list(column) for column in zip(*self.rows, strict=False)]


def rows(events: list[StoredEvent]) -> dict[str, Block]:
    """The rows each table gets from a batch (pure)."""
    orders = [ev for ev in events if ev.type in e.ORDER_EVENTS]
    return {
        "orders": Block(ORDER_COLUMNS, [order_row(ev) for ev in orders]),
        "order_lines": Block(LINE_COLUMNS, [row for ev in orders for row in line_rows(ev)]),
        "order_events": Block(EVENT_COLUMNS, [event_row(ev) for ev in orders]),
        "products": Block(PRODUCT_COLUMNS, [product_row(ev) for ev in events if ev.type in e.PRODUCT_EVENTS]),
    }


class OrderAnalytics(Projection):
    """Projection of order and product events into ClickHouse tables for analysts."""

    name: ClassVar[str] = PROJECTION
    store: ClassVar[str] = "clickhouse"
    handles: ClassVar[frozenset[str]] = e.ORDER_EVENTS | e.PRODUCT_EVENTS
    #: Every batch is a part per table to merge and a rollup recompute: about one a second.
    freshness_ms: ClassVar[int] = 1000

    def __init__(self, stores: Stores, version: int = 1) -> None:
        self.version, self.label = version, label(self.name, version)
        self.client = stores.clickhouse
        self.tables = Tables(stores.namespace, version)
        self._unrolled = Deferred()

    async def setup(self) -> None:
        await asyncio.to_thread(self._setup)

    async def checkpoint(self) -> int:
        return await read_checkpoint(self.client, self.tables)

    async def apply(self, batch: Batch) -> None:
        """The facts at once; the rollup rows of the days they touch, and the checkpoint, with them, or in a
        catch-up (``more``) once every few seconds (``Deferred``) for all the days touched since (a catch-up's
        batches touch most days, and each recompute reads the days' facts so far)."""
        await asyncio.to_thread(self._apply, batch)

    async def settle(self) -> None:
        """The rollup rows a catch-up left for later, and the checkpoint they held back."""
        if self._unrolled.upto:
            await asyncio.to_thread(self._roll_up_and_checkpoint, set(), 0)

    async def prepare(self) -> None:
        """Before a switch: the rollup refreshed from this version's facts (a full recompute, done before the live
        version is held)."""
        await asyncio.to_thread(self._refresh_rollup)

    async def is_served(self) -> bool:
        """The served checkpoint view selects this version's checkpoint (it is switched last)."""
        database, view = self.tables.served_checkpoint.split(".", 1)
        found = await asyncio.to_thread(
            self.client.query,
            "SELECT as_select FROM system.tables WHERE database = %(d)s AND name = %(v)s",
            parameters={"d": database, "v": view},
        )
        return any(f"'{self.tables.checkpoint_key}'" in row[0] for row in found.result_rows)

    async def serve(self) -> None:
        await asyncio.to_thread(self._serve)

    async def drop(self) -> None:
        await asyncio.to_thread(self._drop)

    async def repair(self, order_ids: list[str], customer_ids: list[str], events: list[StoredEvent]) -> None:
        await forget_and_apply(self, order_ids, customer_ids, events)

    async def forget(self, order_ids: list[str], customer_ids: list[str]) -> None:
        if order_ids:
            await asyncio.to_thread(self._forget, order_ids)

    async def fingerprints(self, tenant: str) -> dict[str, tuple]:
        """The tenant's order facts (status, total, customer), newest row of each."""
        sql = (
            f"SELECT toString(order_id), status, toString(total), toString(customer_id) "
            f"FROM {self.tables.orders} FINAL WHERE tenant_id = %(t)s"
        )
        found = await asyncio.to_thread(self.client.query, sql, parameters={"t": tenant})
        return {oid: (status, _cents(total), cid) for oid, status, total, cid in found.result_rows}

    @staticmethod
    def expected(facts: TenantFacts) -> dict[str, tuple]:
        return {o.id: (o.status, o.total, o.customer_id) for o in facts.orders.values()}

    async def state(self) -> dict[str, Any]:
        """Every table's rows, by table name less the database (a rollup row without the time it was computed)."""
        return await asyncio.to_thread(self._state)

    def _state(self) -> dict[str, Any]:
        t = self.tables
        facts = {
            table.split(".")[1]: self.client.query(f"SELECT * FROM {table} FINAL ORDER BY ALL").result_rows
            for table in (t.orders, t.order_lines, t.order_events, t.products)
        }
        return facts | {
            table.split(".")[1]: self.client.query(  # a rollup's version is the time it was computed
                f"SELECT * EXCEPT version FROM {table} FINAL ORDER BY ALL"
            ).result_rows
            for table in (t.order_hours, t.product_days)
        }

    def _forget(self, order_ids: list[str]) -> None:
        days = self.client.query(
            f"SELECT DISTINCT tenant_id, toDate32(placed_at) FROM {self.tables.orders} WHERE order_id IN %(ids)s",
            parameters={"ids": order_ids},
        ).result_rows
        for table in (self.tables.orders, self.tables.order_lines, self.tables.order_events):
            self.client.command(f"DELETE FROM {table} WHERE order_id IN %(ids)s", parameters={"ids": order_ids})
        self._roll_up({(tenant, day) for tenant, day in days})

    def _setup(self) -> None:
        rolled_up = self._exists(self.tables.order_hours) or not self._exists(self.tables.orders)
        for statement in self.tables.ddl():
            self.client.command(statement)
        if not rolled_up:  # facts made by a release without rollups
            self._roll_up(None)
        for view, select in self.tables.views().items():  # served only if nothing is yet
            self.client.command(f"CREATE VIEW IF NOT EXISTS {view} {VIEW_SECURITY} AS {select}")

    def _exists(self, table: str) -> bool:
        return bool(self.client.command(f"EXISTS TABLE {table}"))

    def _roll_up(self, days: set[tuple[str, date]] | None) -> None:
        """The rollup rows of these tenants' days (of all with None) recomputed from the facts."""
        if days is not None and not days:
            return
        for statement in rollup_sql(self.tables, days):
            self.client.command(statement)

    def _refresh_rollup(self) -> None:
        self.client.command(f"SYSTEM REFRESH VIEW {self.tables.daily_orders}")
        self.client.command(f"SYSTEM WAIT VIEW {self.tables.daily_orders}")

    def _serve(self) -> None:
        """Each view is swapped atomically with a staged one pointing at this version.

        The rollup was refreshed by ``prepare`` just before: left to its schedule it could
        show an early point of the rebuild. It trails the switch by the commits since, as
        it trails the checkpoint by up to ``ROLLUP_SECONDS`` at any time.
        """
        for view, select in self.tables.views().items():
            staged = f"{view}__staged"
            self.client.command(f"CREATE OR REPLACE VIEW {staged} {VIEW_SECURITY} AS {select}")
            self.client.command(f"EXCHANGE TABLES {view} AND {staged}")
            self.client.command(f"DROP VIEW {staged}")

    def _drop(self) -> None:
        for table in (
            self.tables.daily_orders,
            self.tables.orders,
            self.tables.order_lines,
            self.tables.order_events,
            self.tables.products,
            self.tables.order_hours,
            self.tables.product_days,
        ):
            self.client.command(f"DROP TABLE IF EXISTS {table}")
        for statement in (self.tables.ddl()[0], self.tables.ddl()[-1]):  # the database and checkpoints stay
            self.client.command(statement)
        self.client.command(
            f"DELETE FROM {self.tables.checkpoints} WHERE name = %(p)s", parameters={"p": self.tables.checkpoint_key}
        )

    def _apply(self, batch: Batch) -> None:
        first = batch.events[0].position if batch.events else batch.upto
        for table, block in rows(batch.events).items():
            if block.rows:
                token = f"{table}:{first}:{batch.upto}" if batch.deduplicate else None
                insert_block(self.client, getattr(self.tables, table), block, token)
        days = touched_days(batch.events)
        if batch.more and not self._unrolled.due():
            self._unrolled.add(batch.upto, days=days)
        else:
            self._roll_up_and_checkpoint(days, batch.upto)

    def _roll_up_and_checkpoint(self, days: set[tuple[str, date]], upto: int) -> None:
        started = time.monotonic()
        self._roll_up(days | self._unrolled.of("days"))
        insert_block(
            self.client,
            self.tables.checkpoints,
            Block(("name", "position"), [(self.tables.checkpoint_key, max(upto, self._unrolled.upto))]),
        )
        self._unrolled.done(time.monotonic() - started)


def touched_days(events: list[StoredEvent]) -> set[tuple[str, date]]:
    """The tenants' days (UTC) whose orders a batch changes."""
    return {(ev.tenant_id, _utc_day(ev.payload["order"]["placed_at"])) for ev in events if ev.type in e.ORDER_EVENTS}


def _utc_day(iso: str) -> date:
    at = datetime.fromisoformat(iso)
    return (at.astimezone(UTC) if at.tzinfo else at).date()


def rollup_sql(t: Tables, days: set[tuple[str, date]] | None) -> list[str]:
    """Statements that rewrite the rollup rows of ``days`` (all with None) from the facts.

    Rows the facts no longer have (forgotten orders) are rewritten as zeros. The
    version is the time of the recompute: a later recompute has seen newer facts.
    """
    if days is None:
        facts = kept = "1"
    else:
        pairs = ", ".join(f"({_quoted(tenant)}, '{day.isoformat()}')" for tenant, day in sorted(days))
        facts, kept = f"(tenant_id, toDate32(placed_at)) IN ({pairs})", f"(tenant_id, day) IN ({pairs})"
    version = "toUnixTimestamp64Micro(now64(6))"
    live = "status != 'cancelled'"
    zero = "toDecimal128(0, 2)"
    return [
        f"""INSERT INTO {t.order_hours} (tenant_id, day, hour, orders, cancelled, revenue, discounted, discounts,
                                         subtotals, version)
            SELECT tenant_id, day, hour, sum(orders), sum(cancelled), sum(revenue), sum(discounted), sum(discounts),
                   sum(subtotals), {version}
            FROM (SELECT tenant_id, toDate32(placed_at) AS day, toHour(placed_at) AS hour, count() AS orders,
                         countIf(status = 'cancelled') AS cancelled, sumIf(total, {live}) AS revenue,
                         countIf(discount > 0 AND {live}) AS discounted, sumIf(discount, {live}) AS discounts,
                         sumIf(subtotal, {live}) AS subtotals
                  FROM {t.orders} FINAL WHERE {facts} GROUP BY tenant_id, day, hour
                  UNION ALL
                  SELECT tenant_id, day, hour, toUInt64(0), toUInt64(0), {zero}, toUInt64(0), {zero}, {zero}
                  FROM {t.order_hours} FINAL WHERE {kept})
            GROUP BY tenant_id, day, hour""",
        f"""INSERT INTO {t.product_days} (tenant_id, day, product_id, quantity, revenue, version)
            SELECT tenant_id, day, product_id, sum(quantity), sum(revenue), {version}
            FROM (SELECT tenant_id, toDate32(placed_at) AS day, product_id, sumIf(quantity, {live}) AS quantity,
                         sumIf(line_total, {live}) AS revenue
                  FROM {t.order_lines} FINAL WHERE {facts} GROUP BY tenant_id, day, product_id
                  UNION ALL
                  SELECT tenant_id, day, product_id, toUInt64(0), {zero} FROM {t.product_days} FINAL WHERE {kept})
            GROUP BY tenant_id, day, product_id""",
    ]


def insert_block(client, table: str, block: Block, dedup_token: str | None = None) -> None:
    """One block insert as JSONCompactColumns: on chDB far cheaper than the Native path, and about half the
    time of JSONEachRow (no key per value to write or parse).

    The settings go in the statement: passed as the client's per-call settings, the
    chDB backend reads, sets and restores each one around the call (six engine
    queries per insert, half the analytics projection's time under load).
    """
    settings = {"date_time_input_format": "best_effort"}
    if dedup_token:
        settings["insert_deduplication_token"] = dedup_token
    clause = ", ".join(f"{name} = {_quoted(value)}" for name, value in settings.items())
    body = orjson.dumps(block.as_columns()).decode()
    client.command(
        f"INSERT INTO {table} ({', '.join(block.columns)}) SETTINGS {clause} FORMAT JSONCompactColumns\n{body}"
    )


def _cents(total: str) -> str:
    """A total as the write model shows it (two decimals)."""
    return str(Decimal(total).quantize(Decimal("0.01")))


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

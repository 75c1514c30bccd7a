"""Order analytics in ClickHouse: order and order-line facts, an order-events table and a product dimension.

Facts are ``ReplacingMergeTree(version)`` keyed by order (and line), with the log
position as version, so a re-applied or late batch collapses into the newest row;
the views readers query apply ``FINAL``. Each batch is one block insert per table,
with a deduplication token, and the checkpoint row goes in last.

The canned questions read two rollups, orders per tenant, day and hour and order
lines per tenant, day and product. After its facts, a batch recomputes the rollup
rows of the hours and product days it touched from the facts (never increments them,
so a replayed or redelivered batch cannot count twice; ``analytics_rollups``). In a
catch-up, the recompute (and the checkpoint) waits for a few seconds of batches and
covers all their keys at once (``Batch.more``).

Each version has tables of its own (``orders_v<n>``...); readers and analysts query
views with the plain names (``orders``, ``order_lines``, ``order_events``,
``products``, ``daily_orders`` and ``order_analytics_checkpoint``), which ``serve`` moves to a version
with ``EXCHANGE TABLES``, the checkpoint view last.

With ``PRISM_CLICKHOUSE_CLUSTER`` the same statements run on every node of a cluster,
each table replicated behind a Distributed table of its name (``layouts/clickhouse_cluster``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

import orjson

from projections.analytics_rollups import Touched, forgotten_sql, quoted, rollup_sql, touched
from projections.base import Batch, Deferred, Projection, forget_and_apply
from projections.layouts.clickhouse_cluster import ONE_NODE, Cluster, cluster_of
from projections.layouts.order_analytics import PROJECTION, VIEW_SECURITY, Tables, read_checkpoint
from projections.stores.clients import Stores
from write import events as e
from write import partitions
from write.events import StoredEvent
from write.facts import TenantFacts
from write.partitions import WHOLE, Partition

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

    def __init__(self, stores: Stores, version: int = 1, partition: Partition = WHOLE) -> None:
        super().__init__(stores, version, partition)
        self.client = stores.clickhouse
        self.tables = Tables(stores.namespace, version, partition, cluster_of(stores))
        self.cluster = self.tables.cluster
        self._unrolled = Deferred()

    async def setup(self) -> None:
        await asyncio.to_thread(self._setup)

    async def checkpoint(self) -> int:
        return await read_checkpoint(self.client, self.tables)

    async def apply(self, batch: Batch) -> None:
        """The facts at once; the rollup rows of the hours and product days they touch, and the checkpoint, with
        them, or in a catch-up (``more``) once every few seconds (``Deferred``) for all the keys touched since (a
        catch-up's batches touch most keys, and each recompute reads the keys' facts so far)."""
        await asyncio.to_thread(self._apply, batch)

    async def settle(self) -> None:
        """The rollup rows a catch-up left for later, and the checkpoint they held back."""
        if self._unrolled.upto:
            await asyncio.to_thread(self._roll_up_and_checkpoint, Touched(), 0)

    async def is_served(self) -> bool:
        """The served checkpoint view selects this version's checkpoint (it is switched last)."""
        return await asyncio.to_thread(self._is_served)

    def _is_served(self) -> bool:
        return f"'{self.tables.version_key}'" in self._view_select(self.tables.served_checkpoint)

    def _view_select(self, view: str) -> str:
        """What a view selects, as the engine keeps it ("" when there is no such view)."""
        database, name = view.split(".", 1)
        found = self.client.query(
            "SELECT as_select FROM system.tables WHERE database = %(d)s AND name = %(v)s",
            parameters={"d": database, "v": name},
        )
        return found.result_rows[0][0] if found.result_rows else ""

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
            for table in (t.status_hours, t.product_hours, t.product_days)
        }

    def _forget(self, order_ids: list[str]) -> None:
        hours, products = (
            {tuple(row) for row in self.client.query(sql, parameters={"ids": order_ids}).result_rows}
            for sql in forgotten_sql(self.tables)
        )
        for table in (self.tables.orders, self.tables.order_lines, self.tables.order_events):
            delete = self.cluster.delete_from(table)
            self.client.command(f"{delete} WHERE order_id IN %(ids)s", parameters={"ids": order_ids})
        self._roll_up(Touched(hours, products))

    def _setup(self) -> None:
        """The tables (and views) of this version; a version made by an earlier release gets what it lacks: the
        hourly rollups filled from its facts, ``daily_orders`` and ``order_hours`` as views over them instead of a
        refreshed view and a table of their own."""
        t, on = self.tables, self.cluster.on
        rolled_up = all(self._exists(x) for x in (t.status_hours, t.product_hours, t.product_days))
        rolled_up = rolled_up or not self._exists(t.orders)
        if self._engine(self.tables.daily_orders) == "MaterializedView":  # refreshed from every fact, each period
            self.client.command(f"DROP VIEW {self.tables.daily_orders}{on}")
        for statement in self.tables.ddl():
            self.client.command(statement)
        if not rolled_up:  # facts made by a release without rollups
            self._roll_up(Touched(None, None))
        for view, select in self.tables.views().items():  # served only if nothing is yet
            self.client.command(f"CREATE VIEW IF NOT EXISTS {view}{on} {VIEW_SECURITY} AS {select}")
        if "AS part" not in self._view_select(t.served_checkpoint) and self._is_served():  # an earlier release's
            self.client.command(
                f"CREATE OR REPLACE VIEW {t.served_checkpoint}{on} {VIEW_SECURITY} AS {t.checkpoint_select()}"
            )
        if self._exists(t.order_hours):  # an earlier release's table, which nothing updates any more
            if self._is_served():
                self._serve()
            self.client.command(f"DROP TABLE {t.order_hours}{on}")

    def _exists(self, table: str) -> bool:
        return bool(self.client.command(f"EXISTS TABLE {table}"))

    def _engine(self, table: str) -> str | None:
        database, name = table.split(".", 1)
        found = self.client.query(
            "SELECT engine FROM system.tables WHERE database = %(d)s AND name = %(n)s",
            parameters={"d": database, "n": name},
        ).result_rows
        return found[0][0] if found else None

    def _roll_up(self, keys: Touched) -> None:
        """The rollup rows of these keys (of all with None) recomputed from the facts."""
        for statement in rollup_sql(self.tables, keys):
            self.client.command(statement)

    def _serve(self) -> None:
        """Each view is swapped atomically with a staged one pointing at this version (on a cluster, on each node
        apart: for a moment one node may serve the new version and another the old)."""
        on = self.cluster.on
        for view, select in self.tables.views().items():
            staged = f"{view}__staged"
            self.client.command(f"CREATE OR REPLACE VIEW {staged}{on} {VIEW_SECURITY} AS {select}")
            self.client.command(f"EXCHANGE TABLES {view} AND {staged}{on}")
            self.client.command(f"DROP VIEW {staged}{on}")

    def _drop(self) -> None:
        for table in (
            self.tables.daily_orders,
            self.tables.orders,
            self.tables.order_lines,
            self.tables.order_events,
            self.tables.products,
            self.tables.order_hours,
            self.tables.product_days,
            self.tables.status_hours,
            self.tables.product_hours,
        ):
            for statement in self.cluster.drop_table(table):
                self.client.command(statement)
        kept = (self.tables.database_ddl(), *self.tables.checkpoints_ddl())  # the database and checkpoints stay
        for statement in kept:
            self.client.command(statement)
        self.client.command(  # the version's checkpoint and its partitions'
            f"{self.cluster.delete_from(self.tables.checkpoints)} WHERE name = %(p)s OR startsWith(name, %(parts)s)",
            parameters={"p": self.tables.version_key, "parts": self.tables.version_key + partitions.SEPARATOR},
        )

    def _apply(self, batch: Batch) -> None:
        first = batch.events[0].position if batch.events else batch.upto
        for table, block in rows(batch.events).items():
            if block.rows:
                token = f"{table}:{first}:{batch.upto}" if batch.deduplicate else None
                insert_block(self.client, getattr(self.tables, table), block, token, self.cluster)
        keys = touched(batch.events)
        if batch.more and not self._unrolled.due():
            self._unrolled.add(batch.upto, hours=keys.hours or set(), products=keys.products or set())
        else:
            self._roll_up_and_checkpoint(keys, batch.upto)

    def _roll_up_and_checkpoint(self, keys: Touched, upto: int) -> None:
        started = time.monotonic()
        hours, products = keys.hours or set(), keys.products or set()
        self._roll_up(Touched(hours | self._unrolled.of("hours"), products | self._unrolled.of("products")))
        insert_block(
            self.client,
            self.tables.checkpoints,
            Block(("name", "position"), [(self.tables.checkpoint_key, max(upto, self._unrolled.upto))]),
            cluster=self.cluster,
        )
        self._unrolled.done(time.monotonic() - started)


def insert_block(client, table: str, block: Block, dedup_token: str | None = None, cluster: Cluster = ONE_NODE) -> None:
    """One block insert as JSONCompactColumns: on chDB far cheaper than the Native path, and about half the
    time of JSONEachRow (no key per value to write or parse).

    The settings go in the statement: passed as the client's per-call settings, the
    chDB backend reads, sets and restores each one around the call (six engine
    queries per insert, half the analytics projection's time under load). On a
    cluster, ``table`` is a Distributed table, and the insert waits for its shards.
    """
    settings = {"date_time_input_format": "best_effort"}
    if dedup_token:
        settings["insert_deduplication_token"] = dedup_token
    clause = ", ".join([*(f"{name} = {quoted(value)}" for name, value in settings.items()), *cluster.write_settings])
    body = orjson.dumps(block.as_columns()).decode()
    client.command(
        f"INSERT INTO {table} ({', '.join(block.columns)}) SETTINGS {clause} FORMAT JSONCompactColumns\n{body}"
    )


def _cents(total: str) -> str:
    """A total as the write model shows it (two decimals)."""
    return str(Decimal(total).quantize(Decimal("0.01")))

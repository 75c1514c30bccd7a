"""Order analytics in ClickHouse: order and order-line facts, an order-events table and a product dimension.

Facts are ``ReplacingMergeTree(version)`` keyed by order (and line), with the log
position as version, so a re-applied or late batch collapses into the newest row;
readers use ``FINAL``. Each batch is one block insert per table, with a
deduplication token, and the checkpoint row goes in last.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from projections.base import Batch, Stores
from write import events as e
from write.events import StoredEvent

_TS = "DateTime64(3, 'UTC')"
_SETTINGS = "SETTINGS non_replicated_deduplication_window = 1000"


class Tables:
    """Table names of one version inside the namespace's database."""

    def __init__(self, namespace: str, version: int = 1) -> None:
        self.database = namespace
        self.suffix = f"v{version}"
        self.orders = f"{namespace}.orders_{self.suffix}"
        self.order_lines = f"{namespace}.order_lines_{self.suffix}"
        self.order_events = f"{namespace}.order_events_{self.suffix}"
        self.products = f"{namespace}.products_{self.suffix}"
        self.checkpoints = f"{namespace}.checkpoints"
        self.checkpoint_key = f"order_analytics_{self.suffix}"

    def ddl(self) -> list[str]:
        return [
            f"CREATE DATABASE IF NOT EXISTS {self.database}",
            f"""CREATE TABLE IF NOT EXISTS {self.orders} (
                tenant_id LowCardinality(String), order_id UUID, customer_id UUID, status LowCardinality(String),
                item_count UInt32, subtotal Decimal(12, 2), discount_percent Decimal(5, 2),
                discount Decimal(12, 2), total Decimal(12, 2), placed_at {_TS},
                confirmed_at Nullable({_TS}), shipped_at Nullable({_TS}), cancelled_at Nullable({_TS}),
                version UInt64
            ) ENGINE = ReplacingMergeTree(version) ORDER BY (tenant_id, order_id) {_SETTINGS}""",
            f"""CREATE TABLE IF NOT EXISTS {self.order_lines} (
                tenant_id LowCardinality(String), order_id UUID, line_no UInt16, customer_id UUID,
                product_id UUID, quantity UInt32, unit_price Decimal(12, 2), line_total Decimal(12, 2),
                status LowCardinality(String), placed_at {_TS}, version UInt64
            ) ENGINE = ReplacingMergeTree(version) ORDER BY (tenant_id, order_id, line_no) {_SETTINGS}""",
            f"""CREATE TABLE IF NOT EXISTS {self.order_events} (
                tenant_id LowCardinality(String), position UInt64, order_id UUID, type LowCardinality(String),
                status LowCardinality(String), total Decimal(12, 2), occurred_at {_TS}
            ) ENGINE = ReplacingMergeTree ORDER BY (tenant_id, position) {_SETTINGS}""",
            f"""CREATE TABLE IF NOT EXISTS {self.products} (
                tenant_id LowCardinality(String), product_id UUID, name String, price Decimal(12, 2),
                version UInt64
            ) ENGINE = ReplacingMergeTree(version) ORDER BY (tenant_id, product_id) {_SETTINGS}""",
            f"""CREATE TABLE IF NOT EXISTS {self.checkpoints} (projection String, position UInt64)
                ENGINE = ReplacingMergeTree(position) ORDER BY projection""",
        ]


ORDER_COLUMNS = ["tenant_id", "order_id", "customer_id", "status", "item_count", "subtotal", "discount_percent",
                 "discount", "total", "placed_at", "confirmed_at", "shipped_at", "cancelled_at", "version"]
LINE_COLUMNS = ["tenant_id", "order_id", "line_no", "customer_id", "product_id", "quantity", "unit_price",
                "line_total", "status", "placed_at", "version"]
EVENT_COLUMNS = ["tenant_id", "position", "order_id", "type", "status", "total", "occurred_at"]
PRODUCT_COLUMNS = ["tenant_id", "product_id", "name", "price", "version"]


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def order_row(event: StoredEvent) -> list[Any]:
    o = event.payload["order"]
    return [event.tenant_id, uuid.UUID(o["order_id"]), uuid.UUID(o["customer"]["id"]), o["status"],
            sum(i["quantity"] for i in o["items"]), Decimal(o["subtotal"]), Decimal(o["discount_percent"]),
            Decimal(o["discount"]), Decimal(o["total"]), _ts(o["placed_at"]), _ts(o["confirmed_at"]),
            _ts(o["shipped_at"]), _ts(o["cancelled_at"]), event.position]


def line_rows(event: StoredEvent) -> list[list[Any]]:
    o = event.payload["order"]
    return [[event.tenant_id, uuid.UUID(o["order_id"]), i["line_no"], uuid.UUID(o["customer"]["id"]),
             uuid.UUID(i["product_id"]), i["quantity"], Decimal(i["unit_price"]), Decimal(i["line_total"]),
             o["status"], _ts(o["placed_at"]), event.position] for i in o["items"]]


def event_row(event: StoredEvent) -> list[Any]:
    o = event.payload["order"]
    return [event.tenant_id, event.position, uuid.UUID(o["order_id"]), event.type, o["status"],
            Decimal(o["total"]), event.occurred_at]


def product_row(event: StoredEvent) -> list[Any]:
    p = event.payload
    return [event.tenant_id, uuid.UUID(p["product_id"]), p["name"], Decimal(p["price"]), event.position]


def rows(events: list[StoredEvent]) -> dict[str, list[list[Any]]]:
    """The rows each table gets from a batch (pure)."""
    orders = [ev for ev in events if ev.type in e.ORDER_EVENTS]
    return {
        "orders": [order_row(ev) for ev in orders],
        "order_lines": [row for ev in orders for row in line_rows(ev)],
        "order_events": [event_row(ev) for ev in orders],
        "products": [product_row(ev) for ev in events if ev.type in e.PRODUCT_EVENTS],
    }


COLUMNS = {"orders": ORDER_COLUMNS, "order_lines": LINE_COLUMNS, "order_events": EVENT_COLUMNS,
           "products": PRODUCT_COLUMNS}


class OrderAnalytics:
    """Projection of order and product events into ClickHouse tables for analysts."""

    name: ClassVar[str] = "order_analytics"
    handles: ClassVar[frozenset[str]] = e.ORDER_EVENTS | e.PRODUCT_EVENTS

    def __init__(self, stores: Stores) -> None:
        self.client = stores.clickhouse
        self.tables = Tables(stores.namespace)

    async def setup(self) -> None:
        await asyncio.to_thread(self._setup)

    async def checkpoint(self) -> int:
        return await read_checkpoint(self.client, self.tables)

    async def apply(self, batch: Batch) -> None:
        await asyncio.to_thread(self._apply, batch)

    async def drop(self) -> None:
        await asyncio.to_thread(self.client.command, f"DROP DATABASE IF EXISTS {self.tables.database}")

    def _setup(self) -> None:
        for statement in self.tables.ddl():
            self.client.command(statement)

    def _apply(self, batch: Batch) -> None:
        first = batch.events[0].position if batch.events else batch.upto
        for table, table_rows in rows(batch.events).items():
            if table_rows:
                self.client.insert(getattr(self.tables, table), table_rows, column_names=COLUMNS[table],
                                   settings={"insert_deduplication_token": f"{table}:{first}:{batch.upto}"})
        self.client.insert(self.tables.checkpoints, [[self.tables.checkpoint_key, batch.upto]],
                           column_names=["projection", "position"])


async def read_checkpoint(client, tables: Tables) -> int:
    result = await asyncio.to_thread(client.query, f"SELECT max(position) FROM {tables.checkpoints} "
                                     "WHERE projection = %(p)s", parameters={"p": tables.checkpoint_key})
    return int(result.result_rows[0][0] or 0)

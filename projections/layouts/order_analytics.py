"""Where the ClickHouse order analytics live: versioned tables, the served views over them, the checkpoint."""

from __future__ import annotations

import asyncio
from typing import Any

from projections.layouts.clickhouse_cluster import BY_NAME, ONE_NODE, Cluster
from projections.stores.embedded_writes import EMBEDDED_WRITES
from write import partitions
from write.partitions import WHOLE, Partition

#: The projection this layout stores (readers name it when they ask it to apply a position now).
PROJECTION = "order_analytics"

_TS = "DateTime64(3, 'UTC')"


_SETTINGS = "SETTINGS non_replicated_deduplication_window = 1000"
#: Orders and their lines are read by the hour (a batch recomputes the rollups of the hours it touches): a recompute
#: reads whole granules, and 1,024-row ones keep a quiet hour's read close to its own rows.
_HOURLY = f"{_SETTINGS}, index_granularity = 1024"
#: What ``sum`` of a money column gives: the rollups keep it, so their sums read as the facts' sums.
_SUM = "Decimal(38, 2)"


#: The served views read their tables as the user who made them: analysts' users (on a server) are granted the
#: views alone, never the versioned tables behind them.
VIEW_SECURITY = "SQL SECURITY DEFINER"


class Tables:
    """Table names of one version inside the namespace's database, and the statements that make them on one node or
    on ``cluster`` (where each name is a Distributed table: ``clickhouse_cluster``)."""

    def __init__(
        self, namespace: str, version: int = 1, partition: Partition = WHOLE, cluster: Cluster = ONE_NODE
    ) -> None:
        self.database = namespace
        self.cluster = cluster
        self.suffix = f"v{version}"
        self.orders = f"{namespace}.orders_{self.suffix}"
        self.order_lines = f"{namespace}.order_lines_{self.suffix}"
        self.order_events = f"{namespace}.order_events_{self.suffix}"
        self.products = f"{namespace}.products_{self.suffix}"
        self.daily_orders = f"{namespace}.daily_orders_{self.suffix}"
        self.order_hours = f"{namespace}.order_hours_{self.suffix}"
        self.product_days = f"{namespace}.product_days_{self.suffix}"
        self.status_hours = f"{namespace}.status_hours_{self.suffix}"
        self.product_hours = f"{namespace}.product_hours_{self.suffix}"
        self.checkpoints = f"{namespace}.checkpoints"
        #: The version's checkpoint, which its served view reads; a partition's own is named after it.
        self.version_key = f"order_analytics_{self.suffix}"
        self.checkpoint_key = self.version_key + partition.suffix
        self.served_checkpoint = f"{namespace}.order_analytics_checkpoint"

    def view(self, name: str) -> str:
        """The served view over one table (``orders``, ``order_lines``, ``order_events``, ``products``,
        ``daily_orders``: orders, revenue and discounts per tenant, day and status, summed from the hourly status
        rollup when asked)."""
        return f"{self.database}.{name}"

    def views(self) -> dict[str, str]:
        """What each served view selects from this version, in switching order (the checkpoint last).

        ``order_hours`` and ``product_days`` are the rollups the canned questions read;
        they span tenants, so analysts' SQL is never given them.
        """
        views = {
            self.view(name): f"SELECT * FROM {getattr(self, name)} FINAL"
            for name in ("orders", "order_lines", "order_events", "products", "product_days")
        }
        views[self.view("order_hours")] = self.order_hours_select()
        views[self.view("daily_orders")] = f"SELECT * FROM {self.daily_orders}"
        views[self.served_checkpoint] = self.checkpoint_select()
        return views

    def checkpoint_select(self) -> str:
        """The served checkpoint: one row per partition of this version, named by what follows its key."""
        key = self.version_key
        return (
            f"SELECT substring(name, {len(key) + 1}) AS part, max(position) AS position FROM {self.checkpoints} "
            f"WHERE name = '{key}' OR startsWith(name, '{key}{partitions.SEPARATOR}') GROUP BY name"
        )

    def order_hours_select(self) -> str:
        """Orders per tenant, day and hour (all, cancelled; revenue, discounted orders, discounts and subtotals of
        those kept) summed from the hourly status rollup: a few rows an hour, so no table of its own to write."""
        return f"""SELECT tenant_id, day, hour, sum(n) AS orders, sumIf(n, status = 'cancelled') AS cancelled,
                          sumIf(r, status != 'cancelled') AS revenue, sumIf(dc, status != 'cancelled') AS discounted,
                          sumIf(d, status != 'cancelled') AS discounts, sumIf(s, status != 'cancelled') AS subtotals,
                          max(v) AS version
                   FROM (SELECT tenant_id, day, hour, status, orders AS n, revenue AS r, discounted AS dc,
                                discounts AS d, subtotals AS s, version AS v
                         FROM {self.status_hours} FINAL)
                   GROUP BY tenant_id, day, hour"""

    def daily_orders_select(self) -> str:
        """``daily_orders`` as it always read (orders, revenue and discounts per tenant, placing day and status, of
        every status an order of the day has), summed from the hourly status rollup: a few rows a day, so it costs
        nothing until asked, and is as fresh as the checkpoint."""
        return f"""SELECT tenant_id, toDate(placed) AS day, status, sum(n) AS orders, sum(r) AS revenue,
                          sum(d) AS discounts
                   FROM (SELECT tenant_id, day AS placed, status, orders AS n, revenue AS r, discounts AS d
                         FROM {self.status_hours} FINAL)
                   GROUP BY tenant_id, day, status HAVING orders > 0"""

    def database_ddl(self) -> str:
        """The namespace's database (kept when a version is dropped)."""
        return f"CREATE DATABASE IF NOT EXISTS {self.database}{self.cluster.on}"

    def checkpoints_ddl(self) -> list[str]:
        """The checkpoints of every version (kept when a version is dropped)."""
        return self.cluster.table(
            f"""CREATE TABLE IF NOT EXISTS {self.checkpoints} (name String, position UInt64)
                ENGINE = ReplacingMergeTree(position) ORDER BY name""",
            BY_NAME,
        )

    def ddl(self) -> list[str]:
        """Everything of this version, and the database and checkpoints if missing, in order."""
        table = self.cluster.table
        return [
            self.database_ddl(),
            *table(f"""CREATE TABLE IF NOT EXISTS {self.orders} (
                tenant_id LowCardinality(String), order_id UUID, customer_id UUID, status LowCardinality(String),
                item_count UInt32, subtotal Decimal(12, 2), discount_percent Decimal(5, 2),
                discount Decimal(12, 2), total Decimal(12, 2), placed_at {_TS},
                confirmed_at Nullable({_TS}), shipped_at Nullable({_TS}), cancelled_at Nullable({_TS}),
                version UInt64
            ) ENGINE = ReplacingMergeTree(version)
            ORDER BY (tenant_id, toDate32(placed_at), toHour(placed_at), order_id) {_HOURLY}"""),
            *table(f"""CREATE TABLE IF NOT EXISTS {self.order_lines} (
                tenant_id LowCardinality(String), order_id UUID, line_no UInt16, customer_id UUID,
                product_id UUID, quantity UInt32, unit_price Decimal(12, 2), line_total Decimal(12, 2),
                status LowCardinality(String), placed_at {_TS}, version UInt64
            ) ENGINE = ReplacingMergeTree(version)
            ORDER BY (tenant_id, toDate32(placed_at), toHour(placed_at), order_id, line_no) {_HOURLY}"""),
            *table(f"""CREATE TABLE IF NOT EXISTS {self.order_events} (
                tenant_id LowCardinality(String), position UInt64, order_id UUID, type LowCardinality(String),
                status LowCardinality(String), total Decimal(12, 2), occurred_at {_TS}
            ) ENGINE = ReplacingMergeTree ORDER BY (tenant_id, position) {_SETTINGS}"""),
            *table(f"""CREATE TABLE IF NOT EXISTS {self.products} (
                tenant_id LowCardinality(String), product_id UUID, name String, price Decimal(12, 2),
                version UInt64
            ) ENGINE = ReplacingMergeTree(version) ORDER BY (tenant_id, product_id) {_SETTINGS}"""),
            *table(f"""CREATE TABLE IF NOT EXISTS {self.status_hours} (
                tenant_id LowCardinality(String), day Date32, hour UInt8, status LowCardinality(String),
                orders UInt64, discounted UInt64, revenue {_SUM}, discounts {_SUM}, subtotals {_SUM}, version UInt64
            ) ENGINE = ReplacingMergeTree(version) ORDER BY (tenant_id, day, hour, status)"""),
            *table(f"""CREATE TABLE IF NOT EXISTS {self.product_days} (
                tenant_id LowCardinality(String), day Date32, product_id UUID, quantity UInt64, revenue {_SUM},
                version UInt64
            ) ENGINE = ReplacingMergeTree(version) ORDER BY (tenant_id, day, product_id)"""),
            *table(f"""CREATE TABLE IF NOT EXISTS {self.product_hours} (
                tenant_id LowCardinality(String), day Date32, hour UInt8, product_id UUID, quantity UInt64,
                revenue {_SUM}, version UInt64
            ) ENGINE = ReplacingMergeTree(version) ORDER BY (tenant_id, day, hour, product_id)"""),
            f"""CREATE VIEW IF NOT EXISTS {self.daily_orders}{self.cluster.on} AS {self.daily_orders_select()}""",
            *self.checkpoints_ddl(),
        ]


def checkpoint_query(tables: Tables, served: bool = False, part: str = "") -> tuple[str, dict[str, Any]]:
    """The statement of this version's checkpoint, or with ``served`` of the partition ``part`` names of the version
    readers see, and its parameters."""
    if served:
        return f"SELECT position FROM {tables.served_checkpoint} WHERE part = %(part)s", {"part": part}
    return f"SELECT max(position) FROM {tables.checkpoints} WHERE name = %(p)s", {"p": tables.checkpoint_key}


def checkpoint_of(rows: list[tuple]) -> int:
    """The position in ``checkpoint_query``'s answer (0 before the first batch)."""
    return int(rows[0][0] or 0) if rows else 0


async def read_checkpoint(client, tables: Tables) -> int:
    """This version's checkpoint (readers ask for the served one on their own clients: ``checkpoint_query``);
    remembered between two writes to the embedded engine."""
    sql, parameters = checkpoint_query(tables)

    async def read() -> int:
        return checkpoint_of((await asyncio.to_thread(client.query, sql, parameters=parameters)).result_rows)

    return await EMBEDDED_WRITES.remembered(("checkpoint", tables.checkpoints, tables.checkpoint_key), read)

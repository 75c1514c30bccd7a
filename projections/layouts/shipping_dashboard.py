"""Where the Postgres shipping dashboard lives: one versioned table of orders, its served views, its checkpoint."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from projections.layouts import postgres_views
from write.partitions import WHOLE, Partition

#: The projection this layout stores (readers name it when they ask it to apply a position now).
PROJECTION = "shipping_dashboard"


class Tables:
    """Names of one version, in the namespace's schema."""

    def __init__(self, namespace: str, version: int = 1, partition: Partition = WHOLE) -> None:
        self.schema = namespace
        self.version = version
        self.orders = f"{namespace}.ship_orders_v{version}"
        #: The version's checkpoint, which its served view reads; a partition's own is named after it.
        self.version_key = f"shipping_dashboard_v{version}"
        self.checkpoint_key = self.version_key + partition.suffix
        self.served = f"{namespace}.shipping_orders"
        self.served_checkpoint = f"{namespace}.shipping_checkpoint"

    def views(self) -> dict[str, str]:
        """What each served view selects from this version, the checkpoint last."""
        return {
            self.served: f"SELECT * FROM {self.orders}",
            self.served_checkpoint: postgres_views.checkpoint_select(self.schema, self.version_key),
        }

    def ddl(self) -> list[str]:
        v = self.version
        return [
            *postgres_views.base_ddl(self.schema),
            # country NULL: unknown (an order without an address, or placed before addresses were recorded).
            # addressed: the order's OrderPlaced, the one event that carries the address, has been applied.
            f"""CREATE TABLE IF NOT EXISTS {self.orders} (
                order_id uuid PRIMARY KEY, tenant_id text NOT NULL, status text NOT NULL,
                country text, city text, item_count integer NOT NULL, placed_at timestamptz NOT NULL,
                confirmed_at timestamptz, shipped_at timestamptz, position bigint NOT NULL,
                addressed boolean NOT NULL)""",
            # The queue, filtered by country or not, oldest confirmation first: waiting orders only.
            f"CREATE INDEX IF NOT EXISTS ship_waiting_country_v{v} ON {self.orders} "
            "(tenant_id, country, confirmed_at, order_id) WHERE status = 'confirmed'",
            f"CREATE INDEX IF NOT EXISTS ship_waiting_v{v} ON {self.orders} "
            "(tenant_id, confirmed_at, order_id) WHERE status = 'confirmed'",
            # Shipped today, per country.
            f"CREATE INDEX IF NOT EXISTS ship_shipped_v{v} ON {self.orders} "
            "(tenant_id, shipped_at) WHERE status = 'shipped'",
        ]


async def read_checkpoint(engine: AsyncEngine, tables: Tables, served: bool = False, part: str = "") -> int:
    """This version's checkpoint, or with ``served`` the checkpoint of the partition ``part`` names of the version
    readers see."""
    if served:
        return await postgres_views.served_checkpoint(engine, tables.served_checkpoint, part)
    return await postgres_views.version_checkpoint(engine, tables.schema, tables.checkpoint_key)

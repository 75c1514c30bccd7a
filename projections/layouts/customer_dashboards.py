"""Where the Postgres customer dashboards live: versioned tables, the served views, the checkpoint."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from projections.layouts import postgres_views
from projections.layouts.postgres_views import query_served as query_served  # where the readers have found it
from write.partitions import WHOLE, Partition

#: The projection this layout stores (readers name it when they ask it to apply a position now).
PROJECTION = "customer_dashboards"

#: What the dashboard shows beyond counts and sums, kept in its row (added to a table made by an older release).
SHOWN_COLUMNS = (
    "spend_by_month jsonb NOT NULL DEFAULT '{}'",  # "YYYY-MM" -> {"orders", "spend"}: the 24 latest months with orders
    "top_products jsonb NOT NULL DEFAULT '[]'",  # up to 5 {"product_id", "name", "quantity", "revenue"}
    "top_product_ids uuid[] NOT NULL DEFAULT '{}'",  # the same products, to find the rows a rename changes
    "last_order jsonb",  # {"order_id", "status", "total", "placed_at"}
)

#: The sums per customer and month or product are rewritten by every batch that touches the customer: room left in
#: each page lets Postgres update them in place (no index holds the sums, so no index is written either).
SUMS_FILLFACTOR = 70


class Tables:
    """Table names of one version, in the namespace's schema."""

    def __init__(self, namespace: str, version: int = 1, partition: Partition = WHOLE) -> None:
        self.schema = namespace
        self.version = version
        self.customers = f"{namespace}.dash_customers_v{version}"
        self.orders = f"{namespace}.dash_orders_v{version}"
        self.lines = f"{namespace}.dash_order_lines_v{version}"
        self.products = f"{namespace}.dash_products_v{version}"
        self.months = f"{namespace}.dash_customer_months_v{version}"
        self.bought = f"{namespace}.dash_customer_products_v{version}"
        self.dashboards = f"{namespace}.customer_dashboards_v{version}"
        self.checkpoints = postgres_views.checkpoints_table(namespace)
        #: The version's checkpoint, which its served view reads; a partition's own is named after it.
        self.version_key = f"customer_dashboards_v{version}"
        self.checkpoint_key = self.version_key + partition.suffix
        self.served = f"{namespace}.customer_dashboards"
        self.served_orders = f"{namespace}.dash_orders"
        self.served_lines = f"{namespace}.dash_order_lines"
        self.served_products = f"{namespace}.dash_products"
        self.served_checkpoint = f"{namespace}.customer_dashboards_checkpoint"

    def index(self, name: str) -> str:
        """An index's name: unique in the schema, so each version's tables get their own (the first keeps the bare
        name it always had)."""
        return name if self.version == 1 else f"{name}_v{self.version}"

    def views(self) -> dict[str, str]:
        """What each served view selects from this version, the checkpoint last."""
        return {
            self.served: f"SELECT * FROM {self.dashboards}",
            self.served_orders: f"SELECT * FROM {self.orders}",
            self.served_lines: f"SELECT * FROM {self.lines}",
            self.served_products: f"SELECT * FROM {self.products}",
            self.served_checkpoint: postgres_views.checkpoint_select(self.schema, self.version_key),
        }

    def ddl(self) -> list[str]:
        return [
            *postgres_views.base_ddl(self.schema),
            f"""CREATE TABLE IF NOT EXISTS {self.customers} (
                customer_id uuid PRIMARY KEY, tenant_id text NOT NULL, name text NOT NULL, email text NOT NULL,
                position bigint NOT NULL)""",
            f"""CREATE TABLE IF NOT EXISTS {self.orders} (
                order_id uuid PRIMARY KEY, tenant_id text NOT NULL, customer_id uuid NOT NULL,
                status text NOT NULL, total numeric(14, 2) NOT NULL, placed_at timestamptz NOT NULL,
                position bigint NOT NULL)""",
            f"CREATE INDEX IF NOT EXISTS {self.index('dash_orders_customer_idx')} ON {self.orders} "
            "(customer_id, placed_at)",
            f"""CREATE TABLE IF NOT EXISTS {self.lines} (
                order_id uuid NOT NULL, line_no smallint NOT NULL, customer_id uuid NOT NULL, product_id uuid NOT NULL,
                quantity integer NOT NULL, line_total numeric(14, 2) NOT NULL, position bigint NOT NULL,
                PRIMARY KEY (order_id, line_no))""",
            f"""CREATE TABLE IF NOT EXISTS {self.products} (
                product_id uuid PRIMARY KEY, tenant_id text NOT NULL, name text NOT NULL, position bigint NOT NULL)""",
            f"""CREATE TABLE IF NOT EXISTS {self.dashboards} (
                customer_id uuid PRIMARY KEY, tenant_id text NOT NULL, name text NOT NULL, email text NOT NULL,
                order_count integer NOT NULL, pending_count integer NOT NULL, confirmed_count integer NOT NULL,
                shipped_count integer NOT NULL, cancelled_count integer NOT NULL,
                lifetime_value numeric(20, 2) NOT NULL, average_order_value numeric(20, 2) NOT NULL,
                last_order_at timestamptz, position bigint NOT NULL)""",
            *(f"ALTER TABLE {self.dashboards} ADD COLUMN IF NOT EXISTS {column}" for column in SHOWN_COLUMNS),
            f"CREATE INDEX IF NOT EXISTS {self.index('customer_dashboards_top_products_idx')} ON {self.dashboards} "
            "USING gin (top_product_ids)",
            # Spend per customer and month, and quantity and revenue per customer and product, of orders not
            # cancelled: kept by adding each batch's changes (see the projection), read for a dashboard row.
            f"""CREATE TABLE IF NOT EXISTS {self.months} (
                customer_id uuid NOT NULL, month date NOT NULL, orders integer NOT NULL, spend numeric(20, 2) NOT NULL,
                PRIMARY KEY (customer_id, month)) WITH (fillfactor = {SUMS_FILLFACTOR})""",
            f"""CREATE TABLE IF NOT EXISTS {self.bought} (
                customer_id uuid NOT NULL, product_id uuid NOT NULL, quantity bigint NOT NULL,
                revenue numeric(20, 2) NOT NULL, PRIMARY KEY (customer_id, product_id))
                WITH (fillfactor = {SUMS_FILLFACTOR})""",
            f"CREATE INDEX IF NOT EXISTS {self.index('customer_dashboards_tenant_idx')} ON {self.dashboards} "
            "(tenant_id, customer_id)",
            f"CREATE INDEX IF NOT EXISTS {self.index('customer_dashboards_ltv_idx')} ON {self.dashboards} "
            "(tenant_id, lifetime_value DESC)",
            f"CREATE INDEX IF NOT EXISTS {self.index('customer_dashboards_orders_idx')} ON {self.dashboards} "
            "(tenant_id, order_count DESC)",
        ]


async def read_checkpoint(engine: AsyncEngine, tables: Tables, served: bool = False, part: str = "") -> int:
    """This version's checkpoint, or with ``served`` the checkpoint of the partition ``part`` names of the version
    readers see."""
    if served:
        return await postgres_views.served_checkpoint(engine, tables.served_checkpoint, part)
    return await postgres_views.version_checkpoint(engine, tables.schema, tables.checkpoint_key)

"""Tables of the write model and its event log (SQLAlchemy Core)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, BYTEA, JSONB, UUID

metadata = MetaData()
Money = Numeric(12, 2)


def _stamps() -> list[Column]:
    return [
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ]


tenants = Table(
    "tenants",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("version", Integer, nullable=False),
    *_stamps(),
)

customers = Table(
    "customers",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", String(64), ForeignKey("tenants.id"), nullable=False),
    Column("name", Text, nullable=False),
    Column("email", Text, nullable=False),
    Column("version", Integer, nullable=False),
    *_stamps(),
    UniqueConstraint("tenant_id", "email", name="customers_tenant_email_key"),
)

products = Table(
    "products",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", String(64), ForeignKey("tenants.id"), nullable=False),
    Column("sku", Text),
    Column("name", Text, nullable=False),
    Column("price", Money, nullable=False),
    Column("version", Integer, nullable=False),
    *_stamps(),
    Index("products_tenant_idx", "tenant_id"),
)

orders = Table(
    "orders",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", String(64), ForeignKey("tenants.id"), nullable=False),
    Column("customer_id", UUID(as_uuid=True), ForeignKey("customers.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("subtotal", Money, nullable=False),
    Column("discount_percent", Numeric(5, 2), nullable=False),
    Column("discount", Money, nullable=False),
    Column("total", Money, nullable=False),
    Column("discount_authorised_by", Text),
    Column("note", Text),
    Column("cancel_reason", Text),
    Column("placed_at", DateTime(timezone=True), nullable=False),
    Column("confirmed_at", DateTime(timezone=True)),
    Column("shipped_at", DateTime(timezone=True)),
    Column("cancelled_at", DateTime(timezone=True)),
    Column("version", Integer, nullable=False),
    *_stamps(),
    # The shipping address (migration 0007): all null when the order has none.
    Column("shipping_recipient", Text),
    Column("shipping_street_lines", ARRAY(Text)),
    Column("shipping_city", Text),
    Column("shipping_postal_code", Text),
    Column("shipping_country", Text),
    Index("orders_tenant_customer_idx", "tenant_id", "customer_id"),
)

order_items = Table(
    "order_items",
    metadata,
    Column("order_id", UUID(as_uuid=True), ForeignKey("orders.id"), nullable=False),
    Column("line_no", SmallInteger, nullable=False),
    Column("product_id", UUID(as_uuid=True), ForeignKey("products.id"), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", Money, nullable=False),
    PrimaryKeyConstraint("order_id", "line_no"),
    Index("order_items_product_idx", "product_id"),
)

events = Table(
    "events",
    metadata,
    Column("position", BigInteger, Identity(always=True), primary_key=True),
    Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
    Column("tenant_id", String(64), nullable=False),
    Column("aggregate_type", String(32), nullable=False),
    Column("aggregate_id", UUID(as_uuid=True), nullable=False),
    Column("aggregate_version", Integer, nullable=False),
    Column("type", String(64), nullable=False),
    Column("schema_version", SmallInteger, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("payload", JSONB, nullable=False),
    Column("correlation_id", UUID(as_uuid=True)),
    Column("causation_id", UUID(as_uuid=True)),
    UniqueConstraint("aggregate_type", "aggregate_id", "aggregate_version", name="events_aggregate_version_key"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("key", String(200), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("response", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "key"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Text, primary_key=True),
    Column("secret_hash", BYTEA, nullable=False, unique=True),
    Column("tenant_id", String(64), ForeignKey("tenants.id")),
    Column("scopes", ARRAY(Text), nullable=False),
    Column("name", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
)

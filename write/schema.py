"""Tables of the write model and its event log (SQLAlchemy Core)."""

from __future__ import annotations

from sqlalchemy import (
    REAL,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Double,
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
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, BYTEA, JSONB, UUID

from write.partitions import BUCKETS

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
    #: The key this one was issued on the strength of (a console session's), revoked with it (0010).
    Column("issued_by", Text, ForeignKey("api_keys.id")),
    Index("api_keys_issued_by", "issued_by"),
)

# The read side's operations, kept beside the log in the same database (migrations 0002, 0003, 0006). They are
# described here because the migrations' metadata is this one: a table missing from it would look, to a
# migration check, like a table to drop. Their statements live in the workers' modules that own each table
# (workers/versions.py, workers/dead_letters.py, workers/runs.py).


def _now(name: str, nullable: bool = False) -> Column:
    return Column(name, DateTime(timezone=True), nullable=nullable, server_default=func.now())


#: Consecutive failures of one event in one projection, until it succeeds or is parked.
projection_failures = Table(
    "projection_failures",
    metadata,
    Column("projection", Text, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("error", Text, nullable=False),
    _now("first_failed_at"),
    _now("last_failed_at"),
    PrimaryKeyConstraint("projection", "position"),
)

#: Parked (poison) events: at most one parked per projection and position.
projection_dead_letters = Table(
    "projection_dead_letters",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("projection", Text, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("event_type", Text, nullable=False),
    Column("event", JSONB, nullable=False),
    Column("error", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("policy", Text, CheckConstraint("policy IN ('halt', 'skip')"), nullable=False),
    Column("status", Text, CheckConstraint("status IN ('parked', 'retried', 'discarded')"), nullable=False),
    Column("first_failed_at", DateTime(timezone=True), nullable=False),
    Column("last_failed_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True)),
    Index(
        "projection_dead_letters_parked_key",
        "projection",
        "position",
        unique=True,
        postgresql_where=text("status = 'parked'"),
    ),
)

#: The last batch of each projection: its size and apply time.
projection_runs = Table(
    "projection_runs",
    metadata,
    Column("projection", Text, primary_key=True),
    Column("last_batch_size", Integer, nullable=False),
    Column("last_batch_seconds", Double, nullable=False),
    _now("updated_at"),
    #: Commit to visible of the projection's recent events, in seconds (median and 99th percentile).
    Column("visible_p50", Double),
    Column("visible_p99", Double),
)

#: Projections halted at a parked event, until it is retried or discarded.
projection_halts = Table(
    "projection_halts",
    metadata,
    Column("projection", Text, primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("dead_letter_id", BigInteger, ForeignKey("projection_dead_letters.id"), nullable=False),
    _now("halted_at"),
)

#: Versions of each projection and their roles (live, next, previous, retiring, dropped); version 1 has no row
#: until a switch or a drop touches it.
projection_versions = Table(
    "projection_versions",
    metadata,
    Column("projection", Text, nullable=False),
    Column("version", Integer, CheckConstraint("version >= 1"), nullable=False),
    Column(
        "role",
        Text,
        CheckConstraint("role IN ('live', 'next', 'previous', 'retiring', 'dropped')"),
        nullable=False,
    ),
    Column("checkpoint", BigInteger, nullable=False, server_default="0"),
    _now("created_at"),
    _now("updated_at"),
    Column("switched_at", DateTime(timezone=True)),
    Column("build_rate", Double),
    Column(
        "partitions",
        SmallInteger,
        CheckConstraint(f"partitions BETWEEN 1 AND {BUCKETS}", name="projection_versions_partitions"),
        nullable=False,
        server_default="1",
    ),
    PrimaryKeyConstraint("projection", "version"),
    *(
        Index(f"projection_versions_one_{role}", "projection", unique=True, postgresql_where=text(f"role = '{role}'"))
        for role in ("live", "next", "previous")
    ),
)

#: Each version's lag, sampled every few seconds for the operator console's charts, the last hour kept (0010).
console_samples = Table(
    "console_samples",
    metadata,
    Column("at", DateTime(timezone=True), nullable=False),
    Column("label", Text, nullable=False),
    Column("checkpoint", BigInteger, nullable=False),
    Column("head", BigInteger, nullable=False),
    Column("lag_events", BigInteger, nullable=False),
    Column("lag_seconds", REAL, nullable=False),
    PrimaryKeyConstraint("label", "at"),
    Index("console_samples_at", "at"),
)

#: The console's latest state that is not a series: ``*`` for the whole status, a host's name for its processes.
console_state = Table(
    "console_state",
    metadata,
    Column("key", Text, primary_key=True),
    _now("at"),
    Column("body", JSONB, nullable=False),
)

"""Tenants, customers, products, orders, order items, the event log and idempotency keys.

Revision ID: 0001
Revises:
"""

from write.migrations.statements import run_script

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE tenants (
    id varchar(64) PRIMARY KEY,
    name text NOT NULL,
    version integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE customers (
    id uuid PRIMARY KEY,
    tenant_id varchar(64) NOT NULL REFERENCES tenants(id),
    name text NOT NULL,
    email text NOT NULL,
    version integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT customers_tenant_email_key UNIQUE (tenant_id, email)
);
CREATE TABLE products (
    id uuid PRIMARY KEY,
    tenant_id varchar(64) NOT NULL REFERENCES tenants(id),
    sku text,
    name text NOT NULL,
    price numeric(12, 2) NOT NULL CHECK (price > 0),
    version integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX products_tenant_idx ON products (tenant_id);
CREATE TABLE orders (
    id uuid PRIMARY KEY,
    tenant_id varchar(64) NOT NULL REFERENCES tenants(id),
    customer_id uuid NOT NULL REFERENCES customers(id),
    status varchar(16) NOT NULL CHECK (status IN ('pending', 'confirmed', 'shipped', 'cancelled')),
    subtotal numeric(12, 2) NOT NULL,
    discount_percent numeric(5, 2) NOT NULL,
    discount numeric(12, 2) NOT NULL,
    total numeric(12, 2) NOT NULL,
    discount_authorised_by text,
    note text,
    cancel_reason text,
    placed_at timestamptz NOT NULL,
    confirmed_at timestamptz,
    shipped_at timestamptz,
    cancelled_at timestamptz,
    version integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_tenant_customer_idx ON orders (tenant_id, customer_id);
CREATE TABLE order_items (
    order_id uuid NOT NULL REFERENCES orders(id),
    line_no smallint NOT NULL,
    product_id uuid NOT NULL REFERENCES products(id),
    quantity integer NOT NULL CHECK (quantity >= 1),
    unit_price numeric(12, 2) NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
CREATE INDEX order_items_product_idx ON order_items (product_id);
CREATE TABLE events (
    position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id uuid NOT NULL UNIQUE,
    tenant_id varchar(64) NOT NULL,
    aggregate_type varchar(32) NOT NULL,
    aggregate_id uuid NOT NULL,
    aggregate_version integer NOT NULL,
    type varchar(64) NOT NULL,
    schema_version smallint NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    payload jsonb NOT NULL,
    correlation_id uuid,
    causation_id uuid,
    CONSTRAINT events_aggregate_version_key UNIQUE (aggregate_type, aggregate_id, aggregate_version)
);
CREATE TABLE idempotency_keys (
    tenant_id varchar(64) NOT NULL,
    key varchar(200) NOT NULL,
    request_hash varchar(64) NOT NULL,
    response jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);
"""

DOWNGRADE = """
DROP TABLE idempotency_keys;
DROP TABLE events;
DROP TABLE order_items;
DROP TABLE orders;
DROP TABLE products;
DROP TABLE customers;
DROP TABLE tenants;
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)

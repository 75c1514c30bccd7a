"""An order's shipping address, optional, given when it is placed: nullable columns on ``orders``.

Columns, not a table of its own: an order has at most one address, set once and never changed, so they keep
PlaceOrder one statement (no second insert, no join to load an order). Adding nullable columns without a default
only changes the catalogue; the check is added ``NOT VALID`` and validated after, which scans the table without
blocking writes.

Revision ID: 0007
Revises: 0006
"""

from write.migrations.statements import run_script

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE orders
    ADD COLUMN shipping_recipient text,
    ADD COLUMN shipping_street_lines text[],
    ADD COLUMN shipping_city text,
    ADD COLUMN shipping_postal_code text,
    ADD COLUMN shipping_country text;
ALTER TABLE orders ADD CONSTRAINT orders_shipping_address_check CHECK (
    (shipping_country IS NULL AND shipping_recipient IS NULL AND shipping_street_lines IS NULL
        AND shipping_city IS NULL AND shipping_postal_code IS NULL)
    OR (shipping_country ~ '^[A-Z]{2}$' AND shipping_recipient IS NOT NULL AND shipping_city IS NOT NULL
        AND cardinality(shipping_street_lines) BETWEEN 1 AND 3)
) NOT VALID;
ALTER TABLE orders VALIDATE CONSTRAINT orders_shipping_address_check;
"""

DOWNGRADE = """
ALTER TABLE orders
    DROP CONSTRAINT orders_shipping_address_check,
    DROP COLUMN shipping_recipient,
    DROP COLUMN shipping_street_lines,
    DROP COLUMN shipping_city,
    DROP COLUMN shipping_postal_code,
    DROP COLUMN shipping_country;
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)

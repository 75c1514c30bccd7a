"""A version being built keeps its rate, for status pages and ``GET /projections`` (events/s, ETA).

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE projection_versions ADD COLUMN build_rate double precision")


def downgrade() -> None:
    op.execute("ALTER TABLE projection_versions DROP COLUMN build_rate")

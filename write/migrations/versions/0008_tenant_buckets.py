"""A tenant's bucket in SQL: the function a partition's slice of the log filters on (``write.partitions``).

A function and nothing stored: the log is not rewritten, and partition counts can change freely. It is the same hash
as ``write.partitions.bucket`` (the first 32 bits of the tenant id's MD5, modulo 1024); being IMMUTABLE, plain SQL,
the planner inlines it into the statements that call it.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

from write.partitions import BUCKETS

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

FUNCTION = f"""
CREATE FUNCTION prism_bucket(tenant_id text) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT (('x' || substr(md5(tenant_id), 1, 8))::bit(32)::bigint % {BUCKETS})::integer $$"""


def upgrade() -> None:
    op.execute(FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION prism_bucket(text)")

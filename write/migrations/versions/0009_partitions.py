"""Each version of a projection records how many partitions it is split into, and each commit notice names its
tenant's bucket.

A version's partition count is fixed when the version is made (a rebuild takes ``PRISM_PARTITIONS``), so every
worker and reader on every host agrees on it: a count taken from each host's own settings could split one tenant
between two owners. The notice ``position:bucket`` wakes only the partition that holds the commit's tenant; a bare
position (older writers) still wakes them all.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

from write.event_log import APPEND_LOCK_KEY, NOTIFY_CHANNEL
from write.partitions import BUCKETS

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

COLUMN = f"""
ALTER TABLE projection_versions ADD COLUMN partitions smallint NOT NULL DEFAULT 1
    CONSTRAINT projection_versions_partitions CHECK (partitions BETWEEN 1 AND {BUCKETS})"""


def _append(notice: str) -> str:
    return f"""
CREATE OR REPLACE FUNCTION append_staged_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    appended bigint;
BEGIN
    PERFORM pg_advisory_xact_lock({APPEND_LOCK_KEY});
    INSERT INTO events (event_id, tenant_id, aggregate_type, aggregate_id, aggregate_version, type, schema_version,
                        payload, correlation_id)
    VALUES (NEW.event_id, NEW.tenant_id, NEW.aggregate_type, NEW.aggregate_id, NEW.aggregate_version, NEW.type,
            NEW.schema_version, NEW.payload, NEW.correlation_id)
    RETURNING position INTO appended;
    DELETE FROM staged_events WHERE staged = NEW.staged;
    PERFORM pg_notify('{NOTIFY_CHANNEL}', {notice});
    RETURN NULL;
END
$$"""


def upgrade() -> None:
    op.execute(COLUMN)
    op.execute(_append("appended::text || ':' || prism_bucket(NEW.tenant_id)::text"))


def downgrade() -> None:
    op.execute(_append("appended::text"))
    op.execute("ALTER TABLE projection_versions DROP COLUMN partitions")

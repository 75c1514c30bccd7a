"""Events are appended at COMMIT: staged by the command, moved into the log by a deferred trigger.

The trigger takes the append lock, so the lock is held for the server's own work and
the commit only, never while the server waits for its client (a busy client process
would otherwise keep every other writer waiting on the lock for its next turn).
``staged_events`` is unlogged: its rows never outlive their transaction.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

from write.event_log import APPEND_LOCK_KEY, NOTIFY_CHANNEL

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLE = """
CREATE UNLOGGED TABLE staged_events (
    staged bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id uuid NOT NULL,
    tenant_id varchar(64) NOT NULL,
    aggregate_type varchar(32) NOT NULL,
    aggregate_id uuid NOT NULL,
    aggregate_version integer NOT NULL,
    type varchar(64) NOT NULL,
    schema_version smallint NOT NULL,
    payload jsonb NOT NULL,
    correlation_id uuid
)"""

FUNCTION = f"""
CREATE FUNCTION append_staged_event() RETURNS trigger LANGUAGE plpgsql AS $$
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
    PERFORM pg_notify('{NOTIFY_CHANNEL}', appended::text);
    RETURN NULL;
END
$$"""

TRIGGER = """
CREATE CONSTRAINT TRIGGER append_at_commit AFTER INSERT ON staged_events
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION append_staged_event()"""


def upgrade() -> None:
    for statement in (TABLE, FUNCTION, TRIGGER):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE staged_events")
    op.execute("DROP FUNCTION append_staged_event()")

"""The operator console's history, kept beside the log; each projection's recent commit-to-visible times; and the
command that caused each event.

``console_samples`` holds each version's lag, sampled every few seconds and trimmed to the last hour, so the console
charts it with no metrics server. ``console_state`` keeps the latest of what is not a series: the whole status, the
stores' health, the tenants (row ``*``), and each host's processes (a row per host). ``causation_id`` now reaches the
log from ``staged_events``: with tracing on, it names the span of the command that wrote the event. A key records the
key it was issued on the strength of (a console session's), so that revoking that key revokes it too.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

from write.event_log import APPEND_LOCK_KEY, NOTIFY_CHANNEL

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

SAMPLES = """
CREATE TABLE console_samples (
    at timestamptz NOT NULL,
    label text NOT NULL,
    checkpoint bigint NOT NULL,
    head bigint NOT NULL,
    lag_events bigint NOT NULL,
    lag_seconds real NOT NULL,
    PRIMARY KEY (label, at)
)"""

#: The trim's range (the primary key serves each label's series).
SAMPLES_AT = "CREATE INDEX console_samples_at ON console_samples (at)"

STATE = """
CREATE TABLE console_state (
    key text PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    body jsonb NOT NULL
)"""

#: A console session is a key issued on the strength of the one its operator signed in with, revoked with it.
ISSUED_BY = (
    "ALTER TABLE api_keys ADD COLUMN issued_by text REFERENCES api_keys(id)",
    "CREATE INDEX api_keys_issued_by ON api_keys (issued_by)",
)

VISIBLE = """
ALTER TABLE projection_runs ADD COLUMN visible_p50 double precision, ADD COLUMN visible_p99 double precision"""


def _append(causation: bool) -> str:
    columns = ", causation_id" if causation else ""
    values = ", NEW.causation_id" if causation else ""
    return f"""
CREATE OR REPLACE FUNCTION append_staged_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    appended bigint;
BEGIN
    PERFORM pg_advisory_xact_lock({APPEND_LOCK_KEY});
    INSERT INTO events (event_id, tenant_id, aggregate_type, aggregate_id, aggregate_version, type, schema_version,
                        payload, correlation_id{columns})
    VALUES (NEW.event_id, NEW.tenant_id, NEW.aggregate_type, NEW.aggregate_id, NEW.aggregate_version, NEW.type,
            NEW.schema_version, NEW.payload, NEW.correlation_id{values})
    RETURNING position INTO appended;
    DELETE FROM staged_events WHERE staged = NEW.staged;
    PERFORM pg_notify('{NOTIFY_CHANNEL}', appended::text || ':' || prism_bucket(NEW.tenant_id)::text);
    RETURN NULL;
END
$$"""


def upgrade() -> None:
    for statement in (
        SAMPLES,
        SAMPLES_AT,
        STATE,
        *ISSUED_BY,
        VISIBLE,
        "ALTER TABLE staged_events ADD COLUMN causation_id uuid",
    ):
        op.execute(statement)
    op.execute(_append(causation=True))


def downgrade() -> None:
    op.execute(_append(causation=False))
    op.execute("ALTER TABLE staged_events DROP COLUMN causation_id")
    op.execute("ALTER TABLE projection_runs DROP COLUMN visible_p50, DROP COLUMN visible_p99")
    op.execute("ALTER TABLE api_keys DROP COLUMN issued_by")
    op.execute("DROP TABLE console_state")
    op.execute("DROP TABLE console_samples")

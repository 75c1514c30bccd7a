"""Operations of the read side kept beside the log: parked (dead-letter) events, failure counts, halts, last batches.

Revision ID: 0002
Revises: 0001
"""

from write.migrations.statements import run_script

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE projection_failures (
    projection text NOT NULL,
    position bigint NOT NULL,
    attempts integer NOT NULL,
    error text NOT NULL,
    first_failed_at timestamptz NOT NULL DEFAULT now(),
    last_failed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, position)
);
CREATE TABLE projection_dead_letters (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    projection text NOT NULL,
    position bigint NOT NULL,
    event_id uuid NOT NULL,
    event_type text NOT NULL,
    event jsonb NOT NULL,
    error text NOT NULL,
    attempts integer NOT NULL,
    policy text NOT NULL CHECK (policy IN ('halt', 'skip')),
    status text NOT NULL CHECK (status IN ('parked', 'retried', 'discarded')),
    first_failed_at timestamptz NOT NULL,
    last_failed_at timestamptz NOT NULL,
    resolved_at timestamptz
);
CREATE UNIQUE INDEX projection_dead_letters_parked_key ON projection_dead_letters (projection, position)
    WHERE status = 'parked';
CREATE TABLE projection_runs (
    projection text PRIMARY KEY,
    last_batch_size integer NOT NULL,
    last_batch_seconds double precision NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE projection_halts (
    projection text PRIMARY KEY,
    position bigint NOT NULL,
    dead_letter_id bigint NOT NULL REFERENCES projection_dead_letters(id),
    halted_at timestamptz NOT NULL DEFAULT now()
);
"""

DOWNGRADE = """
DROP TABLE projection_halts;
DROP TABLE projection_runs;
DROP TABLE projection_dead_letters;
DROP TABLE projection_failures;
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)

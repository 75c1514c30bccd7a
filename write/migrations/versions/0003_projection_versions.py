"""Versions of each projection: the live one, a next one being built, a previous one kept for rollback.

Revision ID: 0003
Revises: 0002
"""

from write.migrations.statements import run_script

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE projection_versions (
    projection text NOT NULL,
    version integer NOT NULL CHECK (version >= 1),
    role text NOT NULL CHECK (role IN ('live', 'next', 'previous', 'retiring', 'dropped')),
    checkpoint bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    switched_at timestamptz,
    PRIMARY KEY (projection, version)
);
CREATE UNIQUE INDEX projection_versions_one_live ON projection_versions (projection) WHERE role = 'live';
CREATE UNIQUE INDEX projection_versions_one_next ON projection_versions (projection) WHERE role = 'next';
CREATE UNIQUE INDEX projection_versions_one_previous ON projection_versions (projection) WHERE role = 'previous';
"""

DOWNGRADE = """
DROP TABLE projection_versions;
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)

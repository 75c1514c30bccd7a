"""API keys: only a hash of each key is kept; a tenant's keys act as that tenant, operator keys span them.

Revision ID: 0004
Revises: 0003
"""

from write.migrations.statements import run_script

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE api_keys (
    id text PRIMARY KEY,
    secret_hash bytea NOT NULL UNIQUE,
    tenant_id varchar(64) REFERENCES tenants (id),
    scopes text[] NOT NULL CHECK (cardinality(scopes) >= 1),
    name text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    revoked_at timestamptz,
    CHECK ((tenant_id IS NULL) = (scopes = ARRAY['operator']))
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);
"""

DOWNGRADE = """
DROP TABLE api_keys;
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)

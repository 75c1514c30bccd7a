"""The log's partition filter and Python agree on every tenant's bucket: ``prism_bucket`` (migration 0008) is
``write.partitions.bucket``."""

from __future__ import annotations

from sqlalchemy import text

from write.partitions import bucket


async def test_sql_and_python_put_a_tenant_in_the_same_bucket(write_engine):
    tenants = [f"tenant-{n}" for n in range(2000)] + ["acme", "a", "z" * 64, "é-ü", "0"]
    async with write_engine.connect() as conn:
        found = await conn.execute(
            text("SELECT t, prism_bucket(t) FROM unnest(CAST(:t AS text[])) AS t"), {"t": tenants}
        )
        in_sql = dict(found.all())
    assert in_sql == {tenant: bucket(tenant) for tenant in tenants}

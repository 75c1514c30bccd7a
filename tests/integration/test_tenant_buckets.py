"""The log's partition filter and Python agree on every tenant's bucket: ``prism_bucket`` (migration 0008) is
``write.partitions.bucket``."""

from __future__ import annotations

from sqlalchemy import text

from infra.ops.status import applied_through
from write import commands as c
from write import event_log
from write.partitions import bucket, of


async def test_sql_and_python_put_a_tenant_in_the_same_bucket(write_engine):
    tenants = [f"tenant-{n}" for n in range(2000)] + ["acme", "a", "z" * 64, "é-ü", "0"]
    async with write_engine.connect() as conn:
        found = await conn.execute(
            text("SELECT t, prism_bucket(t) FROM unnest(CAST(:t AS text[])) AS t"), {"t": tenants}
        )
        in_sql = dict(found.all())
    assert in_sql == {tenant: bucket(tenant) for tenant in tenants}


async def test_a_partition_with_nothing_of_its_own_past_its_checkpoint_counts_as_at_the_head(write_engine, bus):
    busy = "applied-through-busy"
    mine, other = of(busy, 4), next(of(f"quiet-{n}", 4) for n in range(100) if of(f"quiet-{n}", 4) != of(busy, 4))
    async with write_engine.connect() as conn:
        before = await event_log.head(conn)
    first = (await bus.execute(c.RegisterTenant(busy, "Busy"))).position
    await bus.execute(c.RegisterCustomer(busy, "Ana", "ana@busy.example"))
    async with write_engine.connect() as conn:
        head = await event_log.head(conn)
        found = await applied_through(conn, [(mine, before), (other, before), (mine, head)], head)
    # the busy tenant's partition has its commit to apply; the other has none of its own, so it is at the head
    assert found == [first - 1, head, head]

"""A fifth projection, registered on the live system, catches up from position 0 while the others keep going."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from sqlalchemy import text

from projections.base import Batch, Projection, label
from projections.registry import PROJECTIONS
from projections.stores.clients import Stores
from tests.e2e.test_read_your_writes import open_shop
from workers.catch_up import catch_up
from write import events as e
from write.events import StoredEvent
from write.facts import TenantFacts


class OrderStatusCounts(Projection):
    """A small projection: orders per tenant and status, in one Redis hash per tenant."""

    name: ClassVar[str] = "order_status_counts"
    store: ClassVar[str] = "redis"
    handles: ClassVar[frozenset[str]] = e.ORDER_EVENTS

    def __init__(self, stores: Stores, version: int = 1) -> None:
        self.version, self.label = version, label(self.name, version)
        self.redis, self.prefix = stores.redis, f"{stores.namespace}:counts:v{version}:"

    async def setup(self) -> None:
        """Nothing to create."""

    async def serve(self) -> None:
        """Read straight from this version's keys by the test."""

    async def checkpoint(self) -> int:
        return int(await self.redis.get(self.prefix + "checkpoint") or 0)

    async def apply(self, batch: Batch) -> None:
        latest = {ev.payload["order"]["order_id"]: (ev.tenant_id, ev.payload["order"]["status"]) for ev in batch.events}
        async with self.redis.pipeline(transaction=True) as pipe:
            for order_id, (tenant, status) in latest.items():
                pipe.hset(self.prefix + f"order:{tenant}", order_id, status)
            if batch.upto:  # a repair's batch (upto 0) leaves the checkpoint alone
                pipe.set(self.prefix + "checkpoint", batch.upto)
            await pipe.execute()

    async def counts(self, tenant: str) -> dict[str, int]:
        statuses = (await self.redis.hgetall(self.prefix + f"order:{tenant}")).values()
        return {s.decode(): list(statuses).count(s) for s in set(statuses)}

    async def is_served(self) -> bool:
        return True

    async def repair(self, order_ids: list[str], customer_ids: list[str], events: list[StoredEvent]) -> None:
        await self.apply(Batch([ev for ev in events if ev.type in self.handles], 0, deduplicate=False))

    async def fingerprints(self, tenant: str) -> dict[str, tuple]:
        return {
            k.decode(): (v.decode(),) for k, v in (await self.redis.hgetall(self.prefix + f"order:{tenant}")).items()
        }

    @staticmethod
    def expected(facts: TenantFacts) -> dict[str, tuple]:
        return {o.id: (o.status,) for o in facts.orders.values()}

    async def state(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        async for key in self.redis.scan_iter(match=self.prefix + "*"):
            name = key.decode().removeprefix(self.prefix)
            found[name] = await (self.redis.get(key) if name == "checkpoint" else self.redis.hgetall(key))
        return found

    async def drop(self) -> None:
        async for key in self.redis.scan_iter(match=self.prefix + "*"):
            await self.redis.delete(key)


async def test_a_new_projection_backfills_while_the_others_keep_serving(
    http, api_tenant, stores, write_engine, projections
):
    shop, made = await open_shop(http, api_tenant)
    fifth = OrderStatusCounts(stores)
    await fifth.drop()
    PROJECTIONS[fifth.name] = OrderStatusCounts  # the one line of registration
    try:
        before = {name: await p.checkpoint() for name, p in projections.items()}

        async def keep_writing() -> list[int]:
            positions = []
            for _ in range(15):
                answer = await shop.post(
                    "/orders",
                    {
                        "customer_id": made["customer"]["id"],
                        "items": [{"product_id": made["product"]["id"], "quantity": 1}],
                    },
                    201,
                )
                positions.append(answer["position"])
            return positions

        written, progress = await asyncio.gather(keep_writing(), catch_up(write_engine, fifth, batch_size=50))
        assert progress.batches >= 1 and progress.checkpoint >= made["order"]["position"]
        readers = {
            "order_summaries": f"/orders/{made['order']['id']}",
            "order_search": "/search",
            "order_analytics": "/analytics/top-products",
            "customer_dashboards": f"/customers/{made['customer']['id']}/dashboard",
        }
        for name, path in readers.items():  # the live ones kept applying and serving during the backfill
            _, served = await shop.get(path, max(written))
            assert served >= max(written) > before[name]
        await catch_up(write_engine, fifth, batch_size=50)
        async with write_engine.connect() as conn:
            expected = dict(
                (
                    await conn.execute(
                        text("SELECT status, count(*) FROM orders WHERE tenant_id = :t GROUP BY status"),
                        {"t": api_tenant},
                    )
                ).all()
            )
        assert await fifth.counts(api_tenant) == expected == {"pending": 16}
    finally:
        PROJECTIONS.pop(fifth.name)
        await fifth.drop()

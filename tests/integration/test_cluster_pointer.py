"""On a Redis Cluster a tenant's order summaries sit in its partition's slot, so a reader must know the served
version's partition count: the serving pointer carries it, switched with the version in one ``SET``, and a reader
that worked its partition out from an older count still finds the tenant's documents."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from projections.base import Batch
from projections.layouts.order_summaries import ServedReader
from projections.order_summaries import OrderSummaries
from tests.conftest import ON_CLUSTERS
from write import partitions

pytestmark = pytest.mark.skipif(not ON_CLUSTERS, reason="runs on the clusters (PRISM_TEST_STORES=cluster)")

VERSION, COUNT = 9, 4


async def test_a_reader_follows_the_pointer_to_a_new_partition_count(stores, tenant, tenant_events):
    apart = dataclasses.replace(stores, namespace=f"{stores.namespace}ptr")  # a pointer of this test's own
    built = OrderSummaries(apart, VERSION, partitions.of(tenant, COUNT))
    handled = [ev for ev in tenant_events if ev.type in OrderSummaries.handles]
    await built.apply(Batch(handled, handled[-1].position))
    await built.serve()  # version 9 in 4 partitions, as a rebuild's switch would leave it
    order_id = next(ev.payload["order"]["order_id"] for ev in handled if "order" in ev.payload)
    reader = ServedReader(stores.redis, apart.namespace)
    try:
        # ``part`` as a reader works it out from a count read before the switch (the whole log)
        position, doc = await reader.order(order_id, part="", tenant=tenant)
        assert doc is not None and orjson.loads(doc)["order_id"] == order_id
        assert position == handled[-1].position
        _, without_the_tenant = await reader.order(order_id, part="")  # the stale count alone: the wrong slot
        assert without_the_tenant is None
    finally:
        await built.drop()
        await stores.redis.delete(f"{apart.namespace}:os:serving")

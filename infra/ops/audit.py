"""Audit and repair: every read store compared with the write model, drift re-projected from the log.

Per tenant, the write model's facts are read once (``write.facts``) and each
registered projection's served version is asked for its fingerprints, compared
with those its ``expected`` derives from the facts. Run it when the projections
are caught up (lag 0), otherwise recent writes show up as drift.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from infra.bootstrap import active_projections
from projections.base import Projection
from projections.stores.clients import Stores
from workers.locks import exclusively
from workers.versions import LIVE
from write import event_log
from write.facts import TenantFacts, tenant_facts


@dataclass(frozen=True)
class Drift:
    projection: str
    tenant: str
    kind: str  # missing | extra | different
    key: str  # a fingerprint's key: an order id, or a customer id for dashboards
    detail: str = ""


def _compare(projection: str, tenant: str, expected: dict[str, tuple], found: dict[str, tuple]) -> list[Drift]:
    drift = [Drift(projection, tenant, "missing", key) for key in expected.keys() - found.keys()]
    drift += [Drift(projection, tenant, "extra", key) for key in found.keys() - expected.keys()]
    drift += [
        Drift(projection, tenant, "different", key, f"store {found[key]} != write model {expected[key]}")
        for key in expected.keys() & found.keys()
        if expected[key] != found[key]
    ]
    return sorted(drift, key=lambda d: (d.kind, d.key))


async def tenants(write_engine: AsyncEngine) -> list[str]:
    async with write_engine.connect() as conn:
        return [row[0] for row in await conn.execute(text("SELECT id FROM tenants ORDER BY id"))]


async def served(write_engine: AsyncEngine, stores: Stores) -> dict[str, Projection]:
    """The version readers see of every registered projection whose store is open here, by name."""
    return {p.name: p for p in (await active_projections(write_engine, stores, (LIVE,))).values()}


async def audit(
    write_engine: AsyncEngine, stores: Stores, tenant_ids: list[str], projections: dict[str, Projection] | None = None
) -> list[Drift]:
    """Drift of ``projections`` (by default the served versions) from the write model, tenant by tenant."""
    checked = projections if projections is not None else await served(write_engine, stores)
    drift: list[Drift] = []
    for tenant in tenant_ids:
        facts = await _facts(write_engine, tenant)
        for name, projection in checked.items():
            found = await projection.of_tenant(tenant).fingerprints(tenant)
            drift += _compare(name, tenant, projection.expected(facts), found)
    return drift


async def repair(write_engine: AsyncEngine, projections: dict[str, Projection], drift: list[Drift]) -> int:
    """Re-project exactly the drifted aggregates; returns how many orders and customers were rewritten."""
    keys: dict[tuple[str, str], set[str]] = defaultdict(set)
    for d in drift:
        keys[(d.projection, d.tenant)].add(d.key)
    rewritten = 0
    for (name, tenant), drifted in keys.items():
        projection = projections[name].of_tenant(tenant)
        order_ids, customer_ids = projection.aggregates(sorted(drifted), await _facts(write_engine, tenant))
        async with write_engine.connect() as conn:
            related = await _related(conn, order_ids)
            events = await event_log.read_aggregates(conn, [uuid.UUID(i) for i in order_ids + customer_ids + related])
        # the only writer of the tenant's partition of the served version meanwhile
        async with exclusively(write_engine, projection.label):
            await projection.repair(order_ids, customer_ids, events)
        rewritten += len(order_ids) + len(customer_ids)
    return rewritten


async def _facts(write_engine: AsyncEngine, tenant: str) -> TenantFacts:
    async with write_engine.connect() as conn:
        return await tenant_facts(conn, tenant)


async def _related(conn: AsyncConnection, order_ids: list[str]) -> list[str]:
    """Customers and products of these orders: their renames must be re-applied too."""
    if not order_ids:
        return []
    rows = await conn.execute(
        text(
            "SELECT DISTINCT customer_id::text FROM orders WHERE id = ANY(:o) UNION "
            "SELECT DISTINCT product_id::text FROM order_items WHERE order_id = ANY(:o)"
        ),
        {"o": [uuid.UUID(o) for o in order_ids]},
    )
    return [r[0] for r in rows]


def report(drift: list[Drift]) -> str:
    if not drift:
        return "no drift: every store agrees with the write model"
    lines = [f"{d.projection:<20} {d.tenant:<16} {d.kind:<10} {d.key}  {d.detail}" for d in drift]
    return "\n".join([*lines, f"{len(drift)} drifted documents"])

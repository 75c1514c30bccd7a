"""Zero-downtime rebuild: new versions of all four projections catch up beside the live ones under write load,
readers are switched to them and back (rollback) while they keep answering; a dropped version leaves nothing."""

from __future__ import annotations

import asyncio

from elasticsearch import NotFoundError
from sqlalchemy import text

from infra.bootstrap import active_projections
from infra.ops import audit
from projections.layouts.order_analytics import Tables as AnalyticsTables
from projections.layouts.order_search import Names
from projections.layouts.order_summaries import Keys, is_cluster
from projections.registry import PROJECTIONS
from tests.conftest import OPERATOR, eventually
from tests.e2e.test_read_your_writes import open_shop
from workers import versions


class Traffic:
    """Writers placing orders and one reader per store, each recording what it was served."""

    def __init__(self, shop, made) -> None:
        self.shop, self.made = shop, made
        self.paths = {
            "order_summaries": f"/orders/{made['order']['id']}",
            "order_search": "/search?q=gizmo",
            "order_analytics": "/analytics/top-products",
            "customer_dashboards": f"/customers/{made['customer']['id']}/dashboard",
        }
        self.served: dict[str, list[int]] = {name: [] for name in self.paths}
        self.errors: list[str] = []
        self.written: list[int] = []
        self.stop = asyncio.Event()

    async def read(self, name: str) -> None:
        while not self.stop.is_set():
            response = await self.shop.http.get(self.paths[name], headers=self.shop.headers)
            if response.status_code != 200:
                self.errors.append(f"{name}: {response.status_code} {response.text}")
            else:
                self.served[name].append(int(response.headers["X-Prism-Position"]))

    async def write(self) -> None:
        while not self.stop.is_set():
            placed = await self.shop.post(
                "/orders",
                {
                    "customer_id": self.made["customer"]["id"],
                    "items": [{"product_id": self.made["product"]["id"], "quantity": 1}],
                },
                201,
            )
            self.written.append(placed["position"])

    async def start(self) -> list[asyncio.Task]:
        """After each reader has shown the first order (404s before it are not what this test is about)."""
        for path in self.paths.values():
            await self.shop.get(path, self.made["order"]["position"])
        return [asyncio.create_task(self.read(name)) for name in self.paths] + [asyncio.create_task(self.write())]

    async def reads_after(self, position: int) -> None:
        """Until every reader has been served a position at least ``position``."""
        try:
            await eventually(
                lambda: _true(all(s and s[-1] >= position for s in self.served.values())),
                60,
                f"every reader serving position {position}",
            )
        except AssertionError as error:
            last = {name: s[-1:] for name, s in self.served.items()}
            raise AssertionError(f"{error}; last served {last}, errors {self.errors[-3:]}") from None


async def _true(value: bool) -> bool:
    return value


async def _roles(write_engine) -> dict[str, dict[int, str]]:
    found = await versions.listing(write_engine, list(PROJECTIONS))
    return {name: {v.version: v.role for v in found if v.projection == name} for name in PROJECTIONS}


async def _switched(write_engine, targets: dict[str, int]) -> bool:
    roles = await _roles(write_engine)
    return all(roles[name].get(version) == versions.LIVE for name, version in targets.items())


async def test_rebuild_all_four_under_write_load_then_roll_back_and_drop(http, api_tenant, write_engine, stores):
    shop, made = await open_shop(http, api_tenant)
    traffic = Traffic(shop, made)
    tasks = await traffic.start()
    try:
        before = await _roles(write_engine)
        targets = {}
        for name in PROJECTIONS:
            asked = await http.post(f"/projections/{name}/rebuild", headers=OPERATOR)
            assert asked.status_code == 202, asked.text
            targets[name] = asked.json()["version"]
            assert targets[name] > max(before[name])  # dropped versions keep their numbers
        again = await http.post("/projections/order_search/rebuild", headers=OPERATOR)
        assert again.status_code == 409 and "already building" in again.json()["message"]

        status = {row["projection"]: row for row in (await http.get("/projections", headers=OPERATOR)).json()}
        assert {status[f"{n}@v{v}"]["state"] for n, v in targets.items()} <= {"rebuilding", "live"}

        await eventually(lambda: _switched(write_engine, targets), 120, "the four new versions switched in")
        await traffic.reads_after(max(traffic.written))
        roles = await _roles(write_engine)
        assert all(roles[name][1] == versions.PREVIOUS for name in PROJECTIONS)

        for name in PROJECTIONS:  # back to the first versions, still under load
            asked = await http.post(f"/projections/{name}/rollback", headers=OPERATOR)
            assert asked.status_code == 202 and asked.json()["version"] == 1, asked.text
        await eventually(lambda: _switched(write_engine, dict.fromkeys(PROJECTIONS, 1)), 120, "rolled back")
        await traffic.reads_after(max(traffic.written))
    finally:
        traffic.stop.set()
        await asyncio.gather(*tasks)

    assert traffic.errors == []
    for name, positions in traffic.served.items():
        assert len(positions) > 10, name
        assert positions == sorted(positions), f"{name} served a position lower than an earlier one"
    for path in traffic.paths.values():  # every write of the run applied, then nothing may differ
        await shop.get(path, max(traffic.written))
    assert await audit.audit(write_engine, stores, [api_tenant]) == []

    for name in PROJECTIONS:
        dropped = await http.post(f"/projections/{name}/drop-previous", headers=OPERATOR)
        assert dropped.status_code == 202, dropped.text
    await eventually(lambda: _all_dropped(write_engine, targets), 60, "the rebuilt versions dropped")
    await _assert_storage_gone(stores, write_engine, targets)
    refused = await http.post("/projections/order_search/rollback", headers=OPERATOR)
    assert refused.status_code == 409 and "no previous version" in refused.json()["message"]


async def _all_dropped(write_engine, targets: dict[str, int]) -> bool:
    async with write_engine.connect() as conn:
        roles = {
            (r[0], r[1]): r[2]
            for r in await conn.execute(text("SELECT projection, version, role FROM projection_versions"))
        }
    return all(roles.get((name, version)) == versions.DROPPED for name, version in targets.items())


async def _assert_storage_gone(stores, write_engine, targets: dict[str, int]) -> None:
    keys = Keys(stores.namespace, targets["order_summaries"], cluster=is_cluster(stores.redis))
    redis_keys = [k async for k in stores.redis.scan_iter(match=keys.version_pattern)]
    assert redis_keys == []
    try:
        await stores.elasticsearch.indices.get(index=Names(stores.namespace, targets["order_search"]).index)
        raise AssertionError("the dropped Elasticsearch index is still there")
    except NotFoundError:
        pass
    tables = AnalyticsTables(stores.namespace, targets["order_analytics"])
    left = await asyncio.to_thread(
        stores.clickhouse.query,
        "SELECT name FROM system.tables WHERE database = %(d)s AND name LIKE %(n)s",
        parameters={"d": tables.database, "n": f"%_{tables.suffix}"},
    )
    assert left.result_rows == []
    async with stores.dashboards.connect() as conn:
        found = (
            await conn.execute(
                text("SELECT to_regclass(:t)"),
                {"t": f"{stores.namespace}.customer_dashboards_v{targets['customer_dashboards']}"},
            )
        ).scalar()
    assert found is None
    live = await active_projections(write_engine, stores, (versions.LIVE,))
    assert sorted(live) == sorted(PROJECTIONS)  # the first versions, under their bare names

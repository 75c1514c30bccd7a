"""``prism serve`` with every projection split into 4 partitions, on a sandbox of its own beside the session's:
each tenant reads its own writes from every reader, status, metrics and the console show each partition and who
holds it, a rebuild switches every partition at once, and the stores agree with the write model."""

from __future__ import annotations

import itertools

import httpx
import pytest
from playwright.async_api import async_playwright, expect

from infra import sandbox
from infra.processes.supervisor import serving
from infra.services.browser import FLAGS, ensure_chromium, until
from projections.registry import PROJECTIONS
from tests.conftest import OPERATOR, OPERATOR_TOKEN, apart, eventually
from tests.e2e.conftest import open_tenant
from tests.e2e.test_console_browser import STEP_MS, shot, sign_in
from tests.e2e.test_read_your_writes import open_shop
from write import partitions

PARTITIONS = 4


def split(name: str) -> bool:
    """Whether the test's serve splits a projection: all but analytics, which the embedded engine keeps whole
    (``bootstrap.partitions_of``)."""
    return name != "order_analytics"


def tenants_in_every_partition(count: int, each: int = 2) -> list[str]:
    """``each`` tenant ids in every partition of ``count``."""
    found: dict[int, list[str]] = {i: [] for i in range(count)}
    for n in itertools.count():
        tenant = f"split-{n}"
        held = found[partitions.of(tenant, count).index]
        if len(held) < each:
            held.append(tenant)
        if all(len(ids) == each for ids in found.values()):
            return [t for ids in found.values() for t in ids]
    raise AssertionError("unreachable")


async def order_again(shop, made: dict) -> int:
    """Another order of the shop's customer; its position."""
    items = [{"product_id": made["product"]["id"], "quantity": 1}]
    return (await shop.post("/orders", {"customer_id": made["customer"]["id"], "items": items}, 201))["position"]


async def partitions_in_the_console(base: str, version: str) -> None:
    """In a browser, a version's partitions listed and each charted."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(ensure_chromium()), args=list(FLAGS))
        page = await (await browser.new_context(base_url=base, viewport={"width": 1400, "height": 1000})).new_page()
        page.set_default_timeout(STEP_MS)
        await sign_in(page, OPERATOR_TOKEN)
        await page.click(f'#projections tr[data-label="{version}"] button.link')
        await expect(page.locator(f'#projections tr.partition[data-version-label="{version}"]')).to_have_count(
            PARTITIONS
        )
        chart = f"document.getElementById('partitions-lag_seconds-{version}')"
        await until(
            page, f"{chart}?.dataset.series.split(',').length === {PARTITIONS} && {chart}.querySelector('canvas')"
        )
        await until(page, f"Number({chart}.dataset.points) >= {PARTITIONS}")
        await shot(page, "6-partitions")
        await browser.close()


@pytest.mark.timeout(420)
async def test_a_split_projection_reads_each_tenants_writes_and_switches_every_partition_at_once(
    fresh_services, tmp_path
):
    settings = apart(fresh_services, tmp_path, "parts", partitions=PARTITIONS, host_name="host-a")
    await sandbox.reset(settings, beside=True)
    async with serving(settings, tmp_path / "serve.log"):
        base = f"http://{settings.api_host}:{settings.api_port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            tenants = tenants_in_every_partition(PARTITIONS)
            for tenant in tenants:
                await open_tenant(http, tenant)
            shops = {}
            for tenant in tenants:  # each tenant's partition, in every reader, at the position of its own write
                shop, made = shops[tenant] = await open_shop(http, tenant)
                pos = made["order"]["position"]
                summary, _ = await shop.get(f"/orders/{made['order']['id']}", pos)
                assert summary["total"] == "25.00"
                found, _ = await shop.get("/search", pos, q="Gizmo")
                assert [h["order_id"] for h in found["hits"]] == [made["order"]["id"]]
                revenue, _ = await shop.get("/analytics/revenue", pos)
                assert [(r["orders"], r["revenue"]) for r in revenue["rows"]] == [(1, "25.00")]
                board, _ = await shop.get(f"/customers/{made['customer']['id']}/dashboard", pos)
                assert board["orders"]["total"] == 1

            last: dict = {}

            async def every_partition_at_the_head() -> bool:
                answer = await http.get("/positions", headers=OPERATOR)
                assert answer.status_code == 200, answer.text
                at = last["positions"] = answer.json()
                return all(
                    len(at["partitions"].get(name, {})) == (PARTITIONS if split(name) else 0)
                    and set(at["partitions"].get(name, {}).values()) <= {at["head"]}
                    and at["checkpoints"][name] == at["head"]
                    for name in PROJECTIONS
                )

            await eventually(every_partition_at_the_head, 60, "every partition of every projection at the head", last)

            rows = (await http.get("/projections", headers=OPERATOR)).json()
            for name in PROJECTIONS:
                mine = [r for r in rows if r["projection"].split("/")[0] == name]
                parts = ["all"] + [f"{i}of{PARTITIONS}" for i in range(1, 5)] if split(name) else [None]
                assert [r["partition"] for r in mine] == parts, mine
            metrics = (await http.get("/metrics", headers=OPERATOR)).text
            assert 'prism_projection_checkpoint{projection="order_summaries/3of4"}' in metrics

            async def each_partition_charted() -> bool:
                """The console's history: each partition of a split version apart, the versions in the overview."""
                versions = (await http.get("/console/api/overview", headers=OPERATOR)).json()["series"]
                answer = await http.get("/console/api/partitions/order_summaries", headers=OPERATOR)
                assert answer.status_code == 200, answer.text
                charted = answer.json()["series"]
                assert not [label for label in versions if "/" in label], versions.keys()
                parts = {f"order_summaries/{i}of{PARTITIONS}" for i in range(1, PARTITIONS + 1)}
                return "order_summaries" in versions and set(charted) == parts and all(charted[p]["t"] for p in parts)

            await eventually(each_partition_charted, 30, "the lag of each partition in the console's history")
            await partitions_in_the_console(base, "order_summaries")

            async def held_by_this_host() -> bool:
                rows = (await http.get("/projections", headers=OPERATOR)).json()
                return any((r["holder"] or "").startswith("host-a/work:") for r in rows)

            await order_again(*shops[tenants[0]])  # commits keep a partition followed, its lock held
            await eventually(held_by_this_host, 30, "a partition's holder named by host and role")

            asked = await http.post("/projections/customer_dashboards/rebuild", headers=OPERATOR)
            assert asked.status_code == 202, asked.text
            version = asked.json()["version"]

            async def switched() -> bool:
                rows = (await http.get("/projections", headers=OPERATOR)).json()
                live = [r for r in rows if r["projection"].startswith("customer_dashboards") and r["state"] == "live"]
                return {r["version"] for r in live} == {version} and len(live) == PARTITIONS + 1

            await eventually(switched, 120, "every partition of the rebuilt version served at once")
            for tenant in tenants:  # the new version answers each tenant at its partition's position
                shop, made = shops[tenant]
                position = await order_again(shop, made)
                board, _ = await shop.get(f"/customers/{made['customer']['id']}/dashboard", position)
                assert board["orders"]["total"] >= 2

            await eventually(every_partition_at_the_head, 60, "every partition at the head again", last)
            audit = (await http.get("/audit", headers=OPERATOR)).json()
            assert audit["tenants"] == len(tenants) and audit["drift"] == [], audit["drift"][:5]

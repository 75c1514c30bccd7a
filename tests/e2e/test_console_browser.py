"""The operator console in a real browser (Debian's Chromium, headless, driven by Playwright): sign-in, every
projection and its lag chart, a parked event retried from the console, a rebuild started, watched to its switch
and rolled back, then the version rolled back from dropped. Screenshots of each step are kept in
``var/artifacts/console/``."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest_asyncio
from playwright.async_api import Page, async_playwright, expect

from infra.services.browser import FLAGS, ensure_chromium, until
from projections.registry import PROJECTIONS
from tests.conftest import OPERATOR_TOKEN, eventually
from tests.e2e.conftest import headers_of
from tests.e2e.test_operations import open_shop
from workers import dead_letters, versions
from write import event_log

ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "artifacts" / "console"
#: Long enough for a rebuild of a few orders and its switch on a busy machine; a step normally takes seconds.
STEP_MS = 60_000
#: What the page shows at its next refreshes (every 2 s), given a busy machine's pauses.
expect.set_options(timeout=15_000)


@pytest_asyncio.fixture
async def page(server):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(ensure_chromium()), args=list(FLAGS))
        context = await browser.new_context(base_url=server, viewport={"width": 1400, "height": 1000})
        opened = await context.new_page()
        opened.set_default_timeout(STEP_MS)
        violations: list[str] = []
        opened.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
        opened.violations = violations  # type: ignore[attr-defined]
        yield opened
        await browser.close()


async def shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def sign_in(page: Page, credential: str) -> None:
    await page.goto("/console")
    await page.fill("#key", credential)
    await page.click("button[type=submit]")


def live_row(page: Page, name: str):
    return page.locator(f'#projections tr[data-projection="{name}"][data-role="live"]:not(.partition)')


async def test_an_operator_watches_and_acts_from_the_console(page, http, api_tenant, write_engine):
    # No key, a wrong key, a tenant's key: nothing but the sign-in page.
    assert (await page.request.get("/console/api/overview")).status == 401
    assert (await page.request.get("/console/assets/console.js")).status == 401
    await sign_in(page, "prk_nobody_0000")
    await expect(page.locator(".error")).to_contain_text("unknown API key")
    await sign_in(page, headers_of(api_tenant)["Authorization"].removeprefix("Bearer "))
    await expect(page.locator(".error")).to_contain_text("operator scope")
    await shot(page, "1-sign-in-refused")

    await sign_in(page, OPERATOR_TOKEN)
    await expect(page.locator("header h1")).to_have_text("Prism console")
    _, made = await open_shop(http, api_tenant)
    for name in PROJECTIONS:
        await expect(live_row(page, name)).to_have_count(1)
    await until(
        page,
        f"Number(document.getElementById('chart-seconds').dataset.points) >= 2 * {len(PROJECTIONS)} "
        "&& document.querySelector('#chart-seconds canvas') !== null",
    )
    await expect(live_row(page, "order_summaries").locator("td.visible")).to_have_text(
        re.compile(r"^[\d.]+ / [\d.]+ s$"),
        timeout=STEP_MS,  # a worker records it as its follow of the commits ends (5 s)
    )
    await expect(page.locator(f'#tenants tr[data-tenant="{api_tenant}"]')).to_have_count(1)
    await expect(page.locator("#processes tbody tr")).not_to_have_count(0)
    await shot(page, "2-console")

    # A poison event parked, then retried from the console: gone from the list, retried in the log's records.
    async with write_engine.connect() as conn:
        event = (await event_log.read_after(conn, made["order"]["position"] - 1, 1))[0]
    await dead_letters.record_failure(write_engine, "customer_dashboards", event.position, ValueError("poison"))
    dead_id = await dead_letters.park(write_engine, "customer_dashboards", event, dead_letters.SKIP)
    parked = page.locator(f'#dead-letters tr[data-dead-letter="{dead_id}"]')
    await expect(parked).to_contain_text("ValueError: poison")
    await shot(page, "3-dead-letter")
    await parked.locator('button[data-action="retry"]').click()
    await expect(page.locator("#notice")).to_contain_text(f"retry dead letter {dead_id}: done", timeout=STEP_MS)
    await expect(parked).to_have_count(0)
    retried = await dead_letters.listing(write_engine, "customer_dashboards", "retried")
    assert dead_id in [d.id for d in retried]

    # A rebuild from the console, watched to its switch, then rolled back.
    name = "customer_dashboards"
    before = int(await live_row(page, name).get_attribute("data-version"))
    await live_row(page, name).locator('button[data-action="rebuild"]').click()
    await expect(page.locator("#notice")).to_contain_text(
        f"rebuild {name}: done (version {before + 1})", timeout=STEP_MS
    )
    await expect(live_row(page, name)).to_have_attribute("data-version", str(before + 1), timeout=STEP_MS)
    previous = page.locator(f'#projections tr[data-projection="{name}"][data-role="previous"]:not(.partition)')
    await expect(previous).to_have_attribute("data-version", str(before))
    await shot(page, "4-switched")
    await previous.locator('button[data-action="rollback"]').click()
    await expect(live_row(page, name)).to_have_attribute("data-version", str(before), timeout=STEP_MS)
    async with write_engine.connect() as conn:
        assert (await versions.roles(conn, name))[versions.LIVE] == before
    await shot(page, "5-rolled-back")

    # The version rolled back from, now previous, dropped from the console (after its confirmation).
    page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    dropped = page.locator(f'#projections tr[data-projection="{name}"][data-role="previous"]:not(.partition)')
    await expect(dropped).to_have_attribute("data-version", str(before + 1))
    await dropped.locator('button[data-action="drop-previous"]').click()
    await expect(dropped).to_have_count(0)

    async def gone() -> bool:
        async with write_engine.connect() as conn:
            return versions.PREVIOUS not in await versions.roles(conn, name)

    await eventually(gone, what=f"{name} v{before + 1} dropped")

    await page.click("#sign-out")
    await expect(page.locator("#key")).to_be_visible()
    assert page.violations == []  # type: ignore[attr-defined]

"""The browser the console's tests drive: Debian's Chromium (a test tool cannot download its own browser here).

``python -m infra.services.browser`` installs it when missing, before the tests start, so that its installation is
not counted in any test's time.
"""

from __future__ import annotations

from pathlib import Path

from infra.services.local_process import ensure_file

CHROMIUM = Path("/usr/bin/chromium")
#: Headless, and quiet: no connection of its own (to updates, sync, safe browsing), which this machine refuses.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def ensure_chromium() -> Path:
    """Chromium's path, once its Debian package is installed."""
    ensure_file(CHROMIUM, "chromium")
    return CHROMIUM


async def until(page, expression: str, timeout: float = 60.0, every: float = 0.05):
    """The value of ``expression`` in ``page`` once it is truthy, polled from here: the console's strict
    Content-Security-Policy refuses the string evaluation Playwright's own ``wait_for_function`` polls with."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = await page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{expression!r} still false after {timeout:.0f}s")
        await asyncio.sleep(every)  # a poll's pause, bounded by the deadline above


if __name__ == "__main__":
    print(ensure_chromium())

"""Fixtures the integration tests share."""

from __future__ import annotations

import pytest

from tests.integration.history import write_history
from write import event_log


@pytest.fixture
async def tenant_events(bus, tenant, write_engine):
    """A realistic history of one tenant, written through the command bus, as the log holds it."""
    await write_history(bus, tenant)
    async with write_engine.connect() as conn:
        events = await event_log.read_after(conn, 0, 1_000_000)
    return [ev for ev in events if ev.tenant_id == tenant]

"""Every Postgres session a Prism process opens asks the server for keepalives: a host cut off from the network loses
them within seconds, and with them what they held. For the dashboards that is a batch's open transaction, whose row
locks the partition's next holder would otherwise wait on until TCP gives up (the two-host drill's cut)."""

from __future__ import annotations

from sqlalchemy import text

from projections.stores.postgres import KEEPALIVES


async def test_the_dashboards_sessions_ask_for_keepalives(stores):
    async with stores.dashboards.connect() as conn:
        found = {name: (await conn.execute(text(f"SHOW {name}"))).scalar_one() for name in KEEPALIVES}
    assert found == KEEPALIVES  # idle 5 s, 2 s apart, 3 probes; 10 s for unacknowledged data

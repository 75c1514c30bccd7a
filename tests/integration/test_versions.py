"""Versions of a projection driven by the runner alone: build beside the live one, switch, roll back, drop."""

from __future__ import annotations

import io
import uuid
from dataclasses import replace

import pytest
from sqlalchemy import text

from infra import bootstrap
from infra.ops import rebuilds as rebuild
from infra.ops.status import projection_status, table
from projections.customer_dashboards import CustomerDashboards
from projections.layouts.order_summaries import ServedReader, served_version
from projections.order_summaries import OrderSummaries
from tests.integration.history import write_history
from workers import versions
from write import event_log

NAME = OrderSummaries.name


class Terminal(io.StringIO):
    """Output that says it is a terminal: the watcher draws progress bars."""

    def isatty(self) -> bool:
        return True


async def settle(runner, name: str) -> None:
    """What the two queues do: call again while the runner says work is left (bounded); the live catch-up, which
    follows commits for a while, once the build is done."""
    for _ in range(50):
        if await runner.build(name) and await runner.catch_up(name):
            return
    raise AssertionError(f"{name} still had work after 50 messages")


@pytest.fixture
async def runner(fresh_services, write_engine):
    built = bootstrap.runner(fresh_services)
    yield built
    await built.close()


async def test_a_rebuilt_version_is_served_after_its_switch_and_the_old_one_comes_back_on_rollback(
    runner, write_engine, stores, projections, bus, tenant
):
    history = await write_history(bus, tenant)
    async with write_engine.connect() as conn:
        head = await event_log.head(conn)
    await settle(runner, NAME)
    first = (await versions.listing(write_engine, [NAME]))[0].version
    assert await served_version(stores.redis, stores.namespace) == first

    built = await rebuild.start(write_engine, [NAME])
    with pytest.raises(versions.VersionError, match="already building"):
        await versions.start_rebuild(write_engine, NAME)
    status = {
        row.projection: row
        for row in await projection_status(write_engine, await bootstrap.active_projections(write_engine, stores))
    }
    new_label = f"{NAME}@v{built[NAME]}"
    assert status[new_label].state == "rebuilding" and status[new_label].checkpoint == 0
    assert (status[new_label].progress, status[new_label].events_per_s) == (0.0, None)

    await settle(runner, NAME)
    out, terminal = io.StringIO(), Terminal()
    assert await rebuild.watch(write_engine, built, out=out, poll=0.01, timeout=5)
    assert "live: readers switched" in out.getvalue()
    assert await rebuild.watch(write_engine, built, out=terminal, poll=0.01, timeout=5)
    assert f"{NAME} v{built[NAME]}" in terminal.getvalue() and "100%" in terminal.getvalue()
    assert "live: readers switched" in terminal.getvalue()
    assert await served_version(stores.redis, stores.namespace) == built[NAME]
    position, doc = await ServedReader(stores.redis, stores.namespace).order(history["orders"][0])
    assert doc is not None and position >= head

    assert await versions.start_rollback(write_engine, NAME) == first
    await settle(runner, NAME)
    assert await served_version(stores.redis, stores.namespace) == first
    assert await versions.retire_previous(write_engine, NAME) == built[NAME]
    await settle(runner, NAME)
    assert await rebuild.wait_dropped(write_engine, NAME, built[NAME], timeout=5)
    assert [k async for k in stores.redis.scan_iter(match=f"{stores.namespace}:os:v{built[NAME]}:*")] == []
    with pytest.raises(versions.VersionError, match="no previous version"):
        await versions.start_rollback(write_engine, NAME)


async def test_an_unknown_projection_is_refused_with_the_registered_names(write_engine):
    with pytest.raises(rebuild.UnknownProjection, match="registered: order_summaries"):
        await rebuild.start(write_engine, ["order_sumaries"])


async def test_a_worker_late_to_a_drop_does_not_make_the_dropped_version_again(
    runner, fresh_services, write_engine, stores, bus, tenant
):
    """Two workers can both read the role `retiring`; the one that comes second must find nothing to do."""
    name = CustomerDashboards.name
    await write_history(bus, tenant)
    await settle(runner, name)
    built = (await rebuild.start(write_engine, [name]))[name]
    await settle(runner, name)
    await versions.start_rollback(write_engine, name)
    await settle(runner, name)
    assert await versions.retire_previous(write_engine, name) == built
    await settle(runner, name)
    assert await rebuild.wait_dropped(write_engine, name, built, timeout=5)

    late = bootstrap.runner(fresh_services, [name])  # a second worker process, which never built that version
    try:
        # what its message, which read the roles before the drop, goes on to do
        await late._retire(name, versions.Partitioned(built))
    finally:
        await late.close()
    async with stores.dashboards.connect() as conn:
        left = (
            await conn.execute(
                text("SELECT to_regclass(:t)"), {"t": f"{stores.namespace}.customer_dashboards_v{built}"}
            )
        ).scalar()
    assert left is None, "the dropped version's table was created again"


async def test_a_version_being_built_shows_its_rate_and_time_left(write_engine, stores, bus, tenant):
    name = CustomerDashboards.name
    await write_history(bus, tenant)
    async with write_engine.connect() as conn:
        head = await event_log.head(conn)
    version = (await rebuild.start(write_engine, [name]))[name]
    try:
        await versions.record_checkpoint(write_engine, name, version, head // 2)
        shown = await bootstrap.active_projections(write_engine, stores)
        row = next(
            r
            for r in await projection_status(write_engine, shown)
            if r.version == version and r.projection.startswith(name)
        )
        assert row.state == "rebuilding" and row.events_per_s > 0
        assert row.eta_seconds == round((head - row.checkpoint) / row.events_per_s, 1)
    finally:
        await versions.dropped(write_engine, name, version)  # never built: nothing stored to drop


async def test_the_first_version_stays_listed_as_live_while_a_second_is_built(write_engine):
    name = f"listed_{uuid.uuid4().hex[:8]}"  # a projection no test has switched: its version 1 has no row
    version = await versions.start_rebuild(write_engine, name)
    try:
        listed = {(v.version, v.role) for v in await versions.listing(write_engine, [name]) if v.projection == name}
        assert listed == {(1, versions.LIVE), (version, versions.NEXT)}
    finally:
        await versions.dropped(write_engine, name, version)


async def test_status_of_projections_never_set_up_says_so_and_shows_the_rest(write_engine, stores):
    """``prism status`` before the first ``prism serve``: each store that has no storage for the namespace yet is
    shown as such, with its store's reason, instead of one of them failing the whole table."""
    bare = replace(stores, namespace=f"never_{uuid.uuid4().hex[:8]}")
    rows = await projection_status(write_engine, bootstrap.projections(bare))
    unreadable = {row.projection: row.problem for row in rows if row.state == "unreadable"}
    assert {"customer_dashboards", "shipping_dashboard"} <= set(unreadable), rows
    assert all(problem and "refused" in problem for problem in unreadable.values())
    assert len(rows) == len(bootstrap.projections(bare)) and all(row.checkpoint == 0 for row in rows)
    assert f"{rows[0].projection}" in table(rows) and "prism serve" in table(rows)

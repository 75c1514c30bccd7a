"""The worker side's resources, and what one message sets going for a projection.

A catch-up message follows the live version's commits for a while (or, without
commit notices, catches it up to the head it found). A build message, on a queue
of its own, spends a bounded slice on a version being built beside it, and
switches readers to it once it has caught up; a retiring version is dropped. Work
left over goes back on the queue. Under ``prism serve`` a store's builder process, started
while a rebuild needs it and at a lower priority, takes the build queues (with the
embedded ClickHouse, a second thread of its owner does), so the live version keeps up
while a rebuild runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from projections.base import Projection
from workers import runs, versions
from workers.catch_up import Policy, Progress, catch_up, drain, follow
from workers.locks import exclusively
from workers.notices import Notices
from write import event_log

log = logging.getLogger("prism.runner")
#: Time a message may spend on one version before it hands the worker back to the other queues.
SLICE_SECONDS = 1.0
#: Time a message follows the commits of a live version alone (each projection has a worker thread of its own):
#: long enough that under steady writes a worker rarely waits on its queue between two messages.
FOLLOW_SECONDS = 5.0
#: How often the last batch's size and time are written for status.
RECORD_SECONDS = 1.0


@dataclass
class Resources:
    log_engine: AsyncEngine
    make: Callable[[str, int], Projection]
    close: Callable[[], Awaitable[None]]


class ProjectionRunner:
    """Catches projections up on demand; resources open lazily because async clients belong to one event loop."""

    def __init__(
        self,
        open_resources: Callable[[], Awaitable[Resources]],
        batch_size: int,
        policies: dict[str, Policy] | None = None,
        budgets: dict[str, float] | None = None,
        notices: Notices | None = None,
        rebuild_batch_size: int | None = None,
    ) -> None:
        self._open = open_resources
        self.notices = notices
        self.batch_size, self.rebuild_batch_size = batch_size, rebuild_batch_size or batch_size
        self.policies = policies or {}
        self.budgets = budgets or {}  # each projection's freshness budget (s), as the settings give it
        self._last_start: dict[str, float] = {}
        self._last_record: dict[str, float] = {}
        self._beside: dict[str, bool] = {}
        self._resources: Resources | None = None
        self._built: dict[tuple[str, int], Projection] = {}
        self._opening = asyncio.Lock()

    async def resources(self) -> Resources:
        async with self._opening:
            if self._resources is None:
                self._resources = await self._open()
        return self._resources

    async def projection(self, name: str, version: int) -> Projection:
        """One version of a projection, set up on first use."""
        resources = await self.resources()
        if (name, version) not in self._built:
            projection = resources.make(name, version)
            projection.budget = self.budgets.get(name, projection.freshness_ms / 1000)
            await projection.setup()
            self._built[(name, version)] = projection
        return self._built[(name, version)]

    async def catch_up(self, name: str, target: int = 0) -> bool:
        """Catch up the live version; False when more is left for another message.

        A version being built or dropped beside it is left to ``build``, on a queue of
        its own, so the live version never waits for a rebuild's batches; ``beside``
        says whether there is one.
        """
        await self._pace(name)
        engine = (await self.resources()).log_engine
        async with engine.connect() as conn:
            roles, head = await versions.roles(conn, name), await event_log.head(conn)
        self._beside[name] = bool({versions.NEXT, versions.RETIRING} & set(roles))
        live = await self.projection(name, roles[versions.LIVE])
        if self.notices is not None and not self._beside[name]:
            progress = await follow(
                engine,
                live,
                self.batch_size,
                self.policies.get(name) or Policy(),
                self.notices,
                FOLLOW_SECONDS,
            )
        else:  # a version beside it: back at once, so that its build message goes now (and a switch finds the lock)
            progress = await catch_up(
                engine, live, self.batch_size, target, self.policies.get(name), seconds=SLICE_SECONDS, until=head
            )
        await self._record(progress)
        return progress.drained or progress.skipped or progress.halted

    def beside(self, name: str) -> bool:
        """Whether the last catch-up of ``name`` found a version to build or to drop beside the live one."""
        return self._beside.get(name, False)

    async def build(self, name: str) -> bool:
        """Advance a version being built by one slice (switching readers to it once caught up), and drop a retiring
        one; False when more is left for another message."""
        engine = (await self.resources()).log_engine
        async with engine.connect() as conn:
            roles, head = await versions.roles(conn, name), await event_log.head(conn)
        if versions.RETIRING in roles:
            await self._retire(name, roles[versions.RETIRING])
        if versions.NEXT not in roles:
            return True
        live = await self.projection(name, roles[versions.LIVE])
        return await self._build(name, live, roles[versions.NEXT], head)

    async def _pace(self, name: str) -> None:
        """Start at once when the last catch-up began at least the projection's budget ago, else when it has.

        Each catch-up has a fixed cost (the lock, the checkpoint, a store write that on
        ClickHouse makes a part to merge); under steady writes this turns one catch-up
        per commit into one per budget, each with the commits of the budget, while an
        idle projection still starts on the next commit at once.
        """
        wait = self._last_start.get(name, 0.0) + self.budgets.get(name, 0.0) - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_start[name] = time.monotonic()

    async def _build(self, name: str, live: Projection, version: int, head: int) -> bool:
        engine, policy = (await self.resources()).log_engine, self.policies.get(name) or Policy()
        building = await self.projection(name, version)
        progress = await catch_up(
            engine, building, self.rebuild_batch_size, policy=policy, seconds=SLICE_SECONDS, until=head
        )
        await self._record(progress)
        if progress.skipped or progress.halted:
            return True  # another consumer has it, or an operator must act on a dead letter first
        await versions.record_checkpoint(engine, name, version, progress.checkpoint)
        if not progress.drained:
            return False
        await self._switch(name, live, building, policy)
        return True

    async def _switch(self, name: str, live: Projection, building: Projection, policy: Policy) -> None:
        """Bring both versions to the same position, then move readers over.

        The building version is caught up, and made ready to serve (``prepare``: the
        slow part of serving, such as a first refresh), with its own lock alone; then,
        with the live version's lock too, only the commits since are applied to both.
        The live version's lock is held that briefly because the builder may run at a
        lower priority than the live catch-ups that wait for it. The roles are read
        again under the locks: another worker may have switched (or an operator
        retired a version) since this message read them.
        """
        engine = (await self.resources()).log_engine
        async with exclusively(engine, building.label):
            async with engine.connect() as conn:
                head = await event_log.head(conn)
            await drain(engine, building, self.rebuild_batch_size, policy, until=head)
            await building.prepare()
            async with exclusively(engine, live.label):
                async with engine.connect() as conn:
                    roles, head = await versions.roles(conn, name), await event_log.head(conn)
                if roles[versions.LIVE] != live.version or roles.get(versions.NEXT) != building.version:
                    return
                old = await drain(engine, live, self.batch_size, policy, until=head)
                new = await drain(engine, building, self.batch_size, policy, until=old.checkpoint)
                if new.halted or new.checkpoint < old.checkpoint:  # a live version halted at a poison event may be left
                    log.warning(
                        "%s: version %d not switched in: it is at %d, the live one at %d%s",
                        name,
                        building.version,
                        new.checkpoint,
                        old.checkpoint,
                        " (halted)" if new.halted else "",
                    )
                    return
                await building.serve()
                if not await versions.switched(engine, name, building.version, new.checkpoint):
                    return
        log.warning(
            "%s: readers switched from version %d to %d at position %d",
            name,
            live.version,
            building.version,
            new.checkpoint,
        )

    async def _retire(self, name: str, version: int) -> None:
        """Drop a retiring version's storage; never set it up, or a worker late to the drop would make it again."""
        resources = await self.resources()
        retiring = self._built.pop((name, version), None) or resources.make(name, version)
        async with exclusively(resources.log_engine, retiring.label):
            async with resources.log_engine.connect() as conn:
                if (await versions.roles(conn, name)).get(versions.RETIRING) != version:
                    return  # another worker dropped it already
            await retiring.drop()
            await versions.dropped(resources.log_engine, name, version)

    async def _record(self, progress: Progress) -> None:
        """The last batch, for status: at most once a second per projection, not a transaction per catch-up."""
        now = time.monotonic()
        if progress.batches and now - self._last_record.get(progress.projection, 0.0) >= RECORD_SECONDS:
            self._last_record[progress.projection] = now
            await record_run((await self.resources()).log_engine, progress)

    async def close(self) -> None:
        if self.notices is not None:
            await self.notices.close()
        if self._resources is not None:
            await self._resources.close()
            self._resources = None
            self._built.clear()


async def record_run(engine, progress: Progress) -> None:
    """The last batch's size and apply time, for status and metrics (one row per projection)."""
    await runs.record(engine, progress.projection, progress.last_batch_size, progress.last_batch_seconds)

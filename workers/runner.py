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
from collections import deque
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from projections.base import Projection
from projections.registry import PROJECTIONS
from workers import runs, versions
from workers.catch_up import Policy, Progress, catch_up, drain, follow
from workers.locks import exclusively_all
from workers.notices import Notices
from workers.presence import Workers
from write import event_log
from write.partitions import WHOLE, Partition

log = logging.getLogger("prism.runner")
#: Time a message may spend on one version before it hands the worker back to the other queues.
SLICE_SECONDS = 1.0
#: Time a message follows the commits of a live version alone (each projection has a worker thread of its own):
#: long enough that under steady writes a worker rarely waits on its queue between two messages.
FOLLOW_SECONDS = 5.0
#: How often the last batch's size and time are written for status.
RECORD_SECONDS = 1.0
#: Commit-to-visible times kept per live version (the latest), and how old the ones its percentiles take may be.
VISIBLE_KEPT, VISIBLE_SECONDS = 2048, 300.0


@dataclass
class Resources:
    log_engine: AsyncEngine
    make: Callable[[str, int, Partition], Projection]
    close: Callable[[], Awaitable[None]]
    #: How many workers follow a store's projections, on every host (each takes its share of the partitions).
    workers: Workers | None = None


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
        self._visible: dict[str, deque[tuple[float, float]]] = {}
        self._beside: dict[str, bool] = {}
        self._building: dict[str, int] = {}
        #: The partitions of each projection this process is catching up now (at most its share).
        self._following: dict[str, set[int]] = {}
        self._resources: Resources | None = None
        self._built: dict[tuple[str, int, Partition], Projection] = {}
        self._set_up: set[tuple[str, int]] = set()
        self._opening = asyncio.Lock()

    async def resources(self) -> Resources:
        async with self._opening:
            if self._resources is None:
                self._resources = await self._open()
        return self._resources

    async def projection(self, name: str, version: int, partition: Partition = WHOLE) -> Projection:
        """One partition of one version of a projection, set up on first use (each partition's deferred work and
        checkpoint are its own: never share one between partitions)."""
        resources = await self.resources()
        if (name, version, partition) not in self._built:
            projection = resources.make(name, version, partition)
            projection.budget = self.budgets.get(name, projection.freshness_ms / 1000)
            if (name, version) not in self._set_up:  # a version's storage: once, not once per partition
                await projection.setup()
                self._set_up.add((name, version))
            self._built[(name, version, partition)] = projection
        return self._built[(name, version, partition)]

    async def partitions(self, name: str, layout: versions.Partitioned) -> list[Projection]:
        """Every partition of one version."""
        count = layout.partitions
        return [await self.projection(name, layout.version, Partition(i, count)) for i in range(count)]

    async def catch_up(self, name: str, target: int = 0, partition: int = 0) -> bool:
        """Catch up one partition of the live version; False when more is left for another message.

        A version being built or dropped beside it is left to ``build``, on a queue of
        its own, so the live version never waits for a rebuild's batches; ``beside``
        says whether there is one. A partition past this worker's share is left for
        another worker (the relay's next round offers it again).
        """
        resources = await self.resources()
        engine = resources.log_engine
        async with engine.connect() as conn:
            layout, head = await versions.layout(conn, name), await event_log.head(conn)
        self._beside[name] = bool({versions.NEXT, versions.RETIRING} & set(layout))
        self._building[name] = layout[versions.NEXT].partitions if versions.NEXT in layout else 0
        count = layout[versions.LIVE].partitions
        if partition >= count:  # a message sent for another layout
            return True
        if await self._past_share(name, partition, count):
            return True
        live = await self.projection(name, layout[versions.LIVE].version, Partition(partition, count))
        await self._pace(live.label)
        following = self._following.setdefault(name, set())
        following.add(partition)
        try:
            return await self._catch_up(name, live, target, head)
        finally:
            following.discard(partition)

    async def _past_share(self, name: str, partition: int, count: int) -> bool:
        """Whether following one more partition would take this worker past its share of the projection's."""
        workers, following = (await self.resources()).workers, self._following.get(name, set())
        if workers is None or count == 1 or partition in following:
            return False
        return len(following) >= await workers.share(PROJECTIONS[name].store, count)

    async def _catch_up(self, name: str, live: Projection, target: int, head: int) -> bool:
        engine = (await self.resources()).log_engine
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
        now = time.monotonic()
        self._visible.setdefault(progress.projection, deque(maxlen=VISIBLE_KEPT)).extend(
            (now, seconds) for seconds in progress.visible
        )
        await self._record(progress)
        return progress.drained or progress.skipped or progress.halted

    def beside(self, name: str) -> bool:
        """Whether the last catch-up of ``name`` found a version to build or to drop beside the live one."""
        return self._beside.get(name, False)

    def building(self, name: str) -> int:
        """How many partitions the version built beside the live one has (a drop alone: one message does it)."""
        return max(self._building.get(name, 0), 1)

    async def build(self, name: str, partition: int = 0) -> bool:
        """Advance one partition of a version being built by one slice (switching readers to it once every
        partition has caught up), and drop a retiring one; False when more is left for another message."""
        engine = (await self.resources()).log_engine
        async with engine.connect() as conn:
            layout, head = await versions.layout(conn, name), await event_log.head(conn)
        if versions.RETIRING in layout:
            await self._retire(name, layout[versions.RETIRING])
        if versions.NEXT not in layout or partition >= layout[versions.NEXT].partitions:
            return True
        return await self._build(name, layout, partition, head)

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

    async def _build(self, name: str, layout: dict[str, versions.Partitioned], partition: int, head: int) -> bool:
        engine, policy = (await self.resources()).log_engine, self.policies.get(name) or Policy()
        next_version = layout[versions.NEXT]
        building = await self.projection(name, next_version.version, Partition(partition, next_version.partitions))
        progress = await catch_up(
            engine, building, self.rebuild_batch_size, policy=policy, seconds=SLICE_SECONDS, until=head
        )
        await self._record(progress)
        if progress.skipped or progress.halted:
            return True  # another consumer has it, or an operator must act on a dead letter first
        every = await self.partitions(name, next_version)
        reached = min([progress.checkpoint] + [await p.checkpoint() for p in every if p is not building])
        await versions.record_checkpoint(engine, name, next_version.version, reached)
        if not progress.drained:
            return False
        if reached >= head:  # the last partition to catch up switches them all
            await self._switch(name, layout, policy)
        return True

    async def _switch(self, name: str, layout: dict[str, versions.Partitioned], policy: Policy) -> None:
        """Bring both versions, every partition of each, to the same position, then move readers over.

        The building version is caught up, and made ready to serve (``prepare``: the
        slow part of serving, such as a first refresh), with its own locks alone; then,
        with the live version's locks too, only the commits since are applied to both.
        The live version's locks are held that briefly because the builder may run at a
        lower priority than the live catch-ups that wait for them. The layout is read
        again under the locks: another worker may have switched (or an operator
        retired a version) since this message read it. Readers move in one step per
        store, whatever the partitions: a version's storage and pointers are its own.
        """
        engine = (await self.resources()).log_engine
        live, building = (
            await self.partitions(name, layout[versions.LIVE]),
            await self.partitions(name, layout[versions.NEXT]),
        )
        async with exclusively_all(engine, [p.label for p in building]):
            async with engine.connect() as conn:
                head = await event_log.head(conn)
            for partition in building:
                await drain(engine, partition, self.rebuild_batch_size, policy, until=head)
            await building[0].prepare()
            async with exclusively_all(engine, [p.label for p in live]):
                async with engine.connect() as conn:
                    now, head = await versions.layout(conn, name), await event_log.head(conn)
                if now.get(versions.LIVE) != layout[versions.LIVE] or now.get(versions.NEXT) != layout[versions.NEXT]:
                    return
                old = [await drain(engine, p, self.batch_size, policy, until=head) for p in live]
                reached = min(p.checkpoint for p in old)
                new = [await drain(engine, p, self.batch_size, policy, until=reached) for p in building]
                at = min(p.checkpoint for p in new)
                if any(p.halted for p in new) or at < reached:  # a live version halted at a poison event may be left
                    log.warning(
                        "%s: version %d not switched in: it is at %d, the live one at %d%s",
                        name,
                        building[0].version,
                        at,
                        reached,
                        " (halted)" if any(p.halted for p in new) else "",
                    )
                    return
                await building[0].serve()
                if not await versions.switched(engine, name, building[0].version, at):
                    return
        log.warning(
            "%s: readers switched from version %d to %d at position %d (%d partitions)",
            name,
            live[0].version,
            building[0].version,
            at,
            len(building),
        )

    async def _retire(self, name: str, retiring: versions.Partitioned) -> None:
        """Drop a retiring version's storage; never set it up, or a worker late to the drop would make it again."""
        resources = await self.resources()
        count = retiring.partitions
        parts = [
            self._built.pop(key) if key in self._built else resources.make(*key)
            for key in ((name, retiring.version, Partition(i, count)) for i in range(count))
        ]
        async with exclusively_all(resources.log_engine, [p.label for p in parts]):
            async with resources.log_engine.connect() as conn:
                if (await versions.roles(conn, name)).get(versions.RETIRING) != retiring.version:
                    return  # another worker dropped it already
            await parts[0].drop()
            await versions.dropped(resources.log_engine, name, retiring.version)

    async def _record(self, progress: Progress) -> None:
        """The last batch, for status: at most once a second per projection, not a transaction per catch-up."""
        now = time.monotonic()
        if progress.batches and now - self._last_record.get(progress.projection, 0.0) >= RECORD_SECONDS:
            self._last_record[progress.projection] = now
            kept = self._visible.get(progress.projection, ())
            lately = [seconds for at, seconds in kept if now - at <= VISIBLE_SECONDS]
            await record_run((await self.resources()).log_engine, progress, lately)

    async def close(self) -> None:
        if self.notices is not None:
            await self.notices.close()
        if self._resources is not None:
            await self._resources.close()
            self._resources = None
            self._built.clear()
            self._set_up.clear()


async def record_run(engine, progress: Progress, visible: Collection[float] | None = None) -> None:
    """The last batch's size and apply time, and the commit-to-visible times of a live version's last events (a
    build's events are old: none), for status and metrics (one row per projection)."""
    seen = sorted(visible or ())
    percentiles = (seen[len(seen) // 2], seen[min(len(seen) - 1, len(seen) * 99 // 100)]) if seen else (None, None)
    await runs.record(engine, progress.projection, progress.last_batch_size, progress.last_batch_seconds, *percentiles)

"""What every projection is: the events it takes, a batched apply, and a checkpoint kept with the change."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from projections.stores.clients import Stores
from write import partitions
from write.events import StoredEvent
from write.facts import TenantFacts
from write.partitions import WHOLE, Partition


@dataclass(frozen=True)
class Batch:
    """The events a projection handles from one slice of the log, and the position the slice ends at.

    ``upto`` may be past the last handled event: a slice of events the projection
    ignores still moves its checkpoint.
    """

    events: list[StoredEvent]
    upto: int
    #: False for repairs: a rewritten block must not be taken for a retried one.
    deduplicate: bool = True
    #: More of the log follows at once (a catch-up's full slice): a projection may leave part of this batch's work,
    #: and the checkpoint with it, to a later batch or to ``settle`` (see ``Projection``).
    more: bool = False


@dataclass
class Deferred:
    """The work a catch-up's batches with ``more`` have left for later, as sets of keys by kind (the customers whose
    rows to show, the days to roll up), and the position the checkpoint moves to once it is done.

    It is due ``DEFERRED_SECONDS`` after the first batch left it, or four times as long as
    it took last time if that is longer: work that grows with the store (a rollup
    recomputed from every fact so far) then stays a fraction of the catch-up.
    """

    keys: dict[str, set] = field(default_factory=dict)
    upto: int = 0
    since: float = 0.0
    took: float = 0.0

    def add(self, upto: int, **keys: set) -> None:
        if not self.upto:
            self.since = time.monotonic()
        for kind, found in keys.items():
            self.keys.setdefault(kind, set()).update(found)
        self.upto = max(self.upto, upto)

    def of(self, kind: str) -> set:
        return self.keys.get(kind, set())

    def due(self) -> bool:
        return bool(self.upto) and time.monotonic() - self.since >= max(DEFERRED_SECONDS, 4 * self.took)

    def done(self, took: float) -> None:
        """The work is done (and committed), in ``took`` seconds."""
        self.keys, self.upto, self.took = {}, 0, took


#: How long a catch-up leaves deferred work (and the checkpoint readers wait on) behind its batches at least.
DEFERRED_SECONDS = 3.0


def label(name: str, version: int, partition: Partition = WHOLE) -> str:
    """How operations name one version of a projection (the first keeps the bare name), and one partition of it."""
    return (name if version == 1 else f"{name}@v{version}") + partition.suffix


#: What a projection's poison events do unless the settings say otherwise: ``halt`` it at the event, or ``skip``
#: the event (parked as a dead letter either way).
HALT, SKIP = "halt", "skip"


class Projection(ABC):
    """A read model fed from the log.

    ``apply`` must be idempotent and version-guarded: re-applying a batch, or
    applying batches out of order, leaves the store as an in-order run does.
    The checkpoint is written with the change so it never passes an unapplied event.

    A projection has versions (``version`` and ``label`` set by its constructor,
    ``cls(stores, version, partition)``), each in storage of its own; readers see the one its
    store's pointer serves (an alias, a view, a pointer key), moved by ``serve``.

    Registered in ``projections.registry``, a subclass gets the workers (catch-up,
    rebuilds, rollbacks, dead letters), status and metrics, the audit and repair,
    and the contract tests, from these methods alone.
    """

    name: ClassVar[str]
    #: The ``Stores`` client it writes through (the embedded ClickHouse can be open in one process only).
    store: ClassVar[str]
    handles: ClassVar[frozenset[str]]
    #: What a poison event does when the settings name no policy for this projection (``HALT`` or ``SKIP``).
    on_poison: ClassVar[str] = HALT
    #: Its freshness budget when the settings name none: how long (ms) commits may wait to be written together.
    #: A cheap store writes each commit as it comes (0); a store whose every write has a fixed cost gathers.
    freshness_ms: ClassVar[int] = 0
    #: Whether the worker gathers commits for the budget before a batch; False when the store gathers them itself
    #: (Elasticsearch makes writes searchable at each refresh: its refresh interval is the budget).
    gathers: ClassVar[bool] = True
    version: int
    label: str
    #: The tenants whose events it applies (``write.partitions``): all of them unless it is split.
    partition: Partition = WHOLE
    _budget: float | None = None

    @property
    def budget(self) -> float:
        """The freshness budget in seconds: set by the worker from the settings, else ``freshness_ms``."""
        return self.freshness_ms / 1000 if self._budget is None else self._budget

    @budget.setter
    def budget(self, seconds: float) -> None:
        self._budget = seconds

    def waited_for(self) -> int:
        """The highest log position a reader is waiting for this projection to apply (0: none); replaced by the
        worker, which hears readers ask (see ``workers.notices``)."""
        return 0

    def __init__(self, stores: Stores, version: int = 1, partition: Partition = WHOLE) -> None:
        """One version of the projection (one partition of it), writing through ``stores``; a subclass opens what it
        needs from them. Each partition keeps a checkpoint of its own; the version's storage and what serves it are
        the version's."""
        self.version, self.partition, self.label = version, partition, label(self.name, version, partition)
        self.stores = stores

    def of_tenant(self, tenant: str) -> Projection:
        """This version's instance for the tenant's partition (where its documents are, on a store that places a
        partition's together, and whose lock a repair of them takes)."""
        held = partitions.of(tenant, self.partition.count)
        return self if held == self.partition else type(self)(self.stores, self.version, held)

    @abstractmethod
    async def setup(self) -> None:
        """Create what the store needs (idempotent); serve this version if the store serves none yet."""

    @abstractmethod
    async def checkpoint(self) -> int:
        """The last log position this projection has applied."""

    @abstractmethod
    async def apply(self, batch: Batch) -> None:
        """Apply ``batch`` in one batched write and move the checkpoint to ``batch.upto``.

        Of a batch with ``more``, a projection may keep part of the work for later
        (work that, redone for every batch of a catch-up, would cost more than the
        writes: a dashboard row's lists, a day's rollup) and leave its checkpoint
        behind until the work is done (see ``Deferred``): by the next batch without
        ``more``, or by ``settle``, which a catch-up calls when it stops.
        Every write being guarded, a process that dies before then replays those
        batches harmlessly.
        """

    async def settle(self) -> None:  # noqa: B027 (optional hook)
        """Finish the work ``apply`` left for later (and move the checkpoint it held back); nothing by default."""

    async def hurry(self) -> None:  # noqa: B027 (optional hook)
        """A reader waits for a position this projection may be writing now: make what is written visible at once
        (for a store whose writes become visible on its own schedule); nothing by default."""

    async def prepare(self) -> None:  # noqa: B027 (optional hook)
        """The slow part of serving (a first refresh), called before a switch while readers still see the live
        version, so that ``serve`` itself is quick; nothing by default."""

    @abstractmethod
    async def serve(self) -> None:
        """Atomically make this version the one readers see."""

    @abstractmethod
    async def is_served(self) -> bool:
        """Whether readers see this version now (what ``serve`` changes)."""

    @abstractmethod
    async def drop(self) -> None:
        """Remove everything this version wrote (tests and rebuilds)."""

    @abstractmethod
    async def repair(self, order_ids: list[str], customer_ids: list[str], events: list[StoredEvent]) -> None:
        """Rewrite what it holds for these orders and customers from their events, whatever is stored now.

        ``events`` are every event of these aggregates and of the customers and products
        their orders name. A store without version tombstones can ``forget_and_apply``.
        """

    async def forget(self, order_ids: list[str], customer_ids: list[str]) -> None:
        """Delete what this version holds for these orders and customers (``forget_and_apply``'s first step)."""
        raise NotImplementedError(f"{type(self).__name__} repairs without forgetting")

    @abstractmethod
    async def fingerprints(self, tenant: str) -> dict[str, tuple]:
        """What this version holds for one tenant, reduced to one comparable tuple per document, by key (an order
        id, a customer id): the audit compares it with ``expected`` of the write model's facts."""

    @staticmethod
    @abstractmethod
    def expected(facts: TenantFacts) -> dict[str, tuple]:
        """The fingerprints ``fingerprints`` must return for a tenant whose write model holds ``facts`` (pure)."""

    @classmethod
    def aggregates(cls, keys: list[str], facts: TenantFacts) -> tuple[list[str], list[str]]:
        """The orders and customers whose events rewrite the documents of these drifted fingerprint keys (pure);
        by default the keys are order ids."""
        return list(keys), []

    @abstractmethod
    async def state(self) -> dict[str, Any]:
        """Everything this version wrote, with the namespace and version left out of its names, so that two
        namespaces that took the same log compare equal (a replay against a live run)."""


async def forget_and_apply(
    projection: Projection, order_ids: list[str], customer_ids: list[str], events: list[StoredEvent]
) -> None:
    """Repair for stores without version tombstones: drop the documents, then apply the aggregates' events.

    ``upto=0`` leaves the checkpoint alone (every store only moves it forward): the
    repaired aggregates' later events may not have reached the projection yet.
    """
    await projection.forget(order_ids, customer_ids)
    handled = [ev for ev in events if ev.type in projection.handles]
    if handled:
        await projection.apply(Batch(handled, 0, deduplicate=False))

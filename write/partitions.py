"""A projection's work split by tenant: every tenant's events fall in one of ``BUCKETS`` fixed buckets, and a
partition is a contiguous range of them.

A bucket is a stable hash of the tenant id (the first 32 bits of its MD5, modulo ``BUCKETS``), the same in Python and
in SQL (``prism_bucket``, migration 0008), never stored: the log stays as it is, and a projection split into P
partitions reads its partition's tenants with the slice's own filter (``event_log.read_slice``). A tenant's events
stay in one partition, so its per-aggregate order and every tenant-wide denormalization keep the log's order. P can
change without touching the log: only the ranges move.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

#: Fixed buckets; a partition count divides them into contiguous ranges, so it can be at most this many.
BUCKETS: Final = 1024
#: Between the name of a version's thing and its partition's (``customer_dashboards_v1/2of4``): what a version's drop
#: looks for to forget its partitions' checkpoints too.
SEPARATOR: Final = "/"


def bucket(tenant_id: str) -> int:
    """The tenant's bucket: ``prism_bucket`` in SQL."""
    return int.from_bytes(hashlib.md5(tenant_id.encode()).digest()[:4], "big") % BUCKETS


@dataclass(frozen=True)
class Partition:
    """Partition ``index`` of ``count``: the buckets ``[index * BUCKETS // count, (index + 1) * BUCKETS // count)``."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.count <= BUCKETS:
            raise ValueError(f"a projection splits into 1 to {BUCKETS} partitions, not {self.count}")
        if not 0 <= self.index < self.count:
            raise ValueError(f"partition {self.index} is not one of {self.count}")

    @property
    def buckets(self) -> tuple[int, int]:
        """The first bucket of the partition, and the first past it."""
        return self.index * BUCKETS // self.count, (self.index + 1) * BUCKETS // self.count

    @property
    def whole(self) -> bool:
        return self.count == 1

    def holds(self, tenant_id: str) -> bool:
        low, high = self.buckets
        return low <= bucket(tenant_id) < high

    def __str__(self) -> str:
        return f"{self.index + 1}of{self.count}"

    @property
    def suffix(self) -> str:
        """What names this partition's own things (its label, its checkpoint) after its version's: none when whole,
        so a projection that is not split keeps every name it had."""
        return "" if self.whole else f"{SEPARATOR}{self}"


#: The whole log: a projection that is not split.
WHOLE: Final = Partition()


def named(suffix: str) -> Partition:
    """The partition a ``suffix`` names (``/2of8``; none for the whole log)."""
    if not suffix:
        return WHOLE
    index, _, count = suffix.removeprefix(SEPARATOR).partition("of")
    return Partition(int(index) - 1, int(count))


def of(tenant_id: str, count: int) -> Partition:
    """The partition of ``count`` that holds the tenant."""
    # The last partition whose first bucket is at most the tenant's: index * BUCKETS // count <= b.
    return Partition(((bucket(tenant_id) + 1) * count - 1) // BUCKETS, count)

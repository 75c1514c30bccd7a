"""Partitions of a projection's work: contiguous bucket ranges that cover every bucket once, a tenant in one."""

from __future__ import annotations

import pytest

from write.partitions import BUCKETS, WHOLE, Partition, bucket, of


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 16, 100, BUCKETS])
def test_the_partitions_of_a_count_cover_every_bucket_once(count):
    covered = [b for p in range(count) for b in range(*Partition(p, count).buckets)]
    assert covered == list(range(BUCKETS))


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 1000])
def test_a_tenant_is_in_exactly_its_partition(count):
    for n in range(500):
        tenant = f"tenant-{n}"
        holding = [p for p in range(count) if Partition(p, count).holds(tenant)]
        assert holding == [of(tenant, count).index]


def test_a_bucket_is_stable_and_in_range():
    assert bucket("acme") == bucket("acme")
    assert {bucket(f"t{n}") for n in range(5000)} <= set(range(BUCKETS))
    assert len({bucket(f"t{n}") for n in range(5000)}) > BUCKETS * 0.9  # spread, not lumped


def test_the_whole_log_is_one_partition():
    assert WHOLE.whole and WHOLE.buckets == (0, BUCKETS) and WHOLE.holds("anyone")


@pytest.mark.parametrize(("index", "count"), [(0, 0), (1, 1), (-1, 2), (0, BUCKETS + 1)])
def test_an_impossible_partition_is_refused(index, count):
    with pytest.raises(ValueError):
        Partition(index, count)

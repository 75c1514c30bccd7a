"""Dramatiq wiring with the StubBroker: one queue per projection, a message catches that projection up."""

from __future__ import annotations

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware.asyncio import AsyncIO

from workers.broker import build_queue_name, declare_actors, queue_name


class RecordingRunner:
    """Stands in for the projection runner (not a store): records what it is asked to do."""

    def __init__(self, fail_times: int = 0, slices: dict[str, int] | None = None, partitions: int = 1) -> None:
        self.calls: list[tuple[str, int]] = []
        self.partitions_asked: list[int] = []
        self.builds: list[str] = []
        self.built_partitions: list[int] = []
        self.fail_times = fail_times
        self.slices = slices or {}  # per projection, slices its rebuild needs
        self.partitions = partitions  # of the version being built

    async def catch_up(self, name: str, target: int = 0, partition: int = 0) -> None:
        self.calls.append((name, target))
        self.partitions_asked.append(partition)
        if len(self.calls) <= self.fail_times:
            raise RuntimeError("store down")

    def beside(self, name: str) -> bool:
        return self.slices.get(name, 0) > 0

    def building(self, name: str) -> int:
        return self.partitions

    async def build(self, name: str, partition: int = 0) -> bool:
        self.builds.append(name)
        self.built_partitions.append(partition)
        self.slices[name] -= 1
        return self.slices[name] <= 0


@pytest.fixture
def broker():
    stub = StubBroker()
    stub.add_middleware(AsyncIO())
    yield stub
    stub.flush_all()
    stub.close()


def run(broker, runner, names, **retries):
    actors = declare_actors(
        broker, runner, names, "ns", max_retries=retries.get("max_retries", 3), min_backoff=1, max_backoff=5
    )
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=50)
    return actors, worker


def deliver(broker, runner, names, *messages, builds: bool = False) -> None:
    """Send ``messages`` (argument tuples) to the first projection's actor and run a worker until its queues are
    empty."""
    actors, worker = run(broker, runner, names)
    worker.start()
    try:
        for arguments in messages:
            actors[names[0]].send(*arguments)
        broker.join(queue_name("ns", names[0]))
        if builds:
            broker.join(build_queue_name("ns", names[0]))
        worker.join()
    finally:
        worker.stop()


def test_each_projection_has_its_own_queue(broker):
    actors, _ = run(broker, RecordingRunner(), ["a", "b"])
    assert {a.queue_name for a in actors.values()} == {queue_name("ns", "a"), queue_name("ns", "b")} == {"ns.a", "ns.b"}


def test_a_message_catches_its_projection_up(broker):
    runner = RecordingRunner()
    actors, worker = run(broker, runner, ["a", "b"])
    worker.start()
    try:
        actors["b"].send(42)
        broker.join(queue_name("ns", "b"))
        worker.join()
    finally:
        worker.stop()
    assert runner.calls == [("b", 42)]


def test_failures_are_retried_with_backoff(broker):
    runner = RecordingRunner(fail_times=2)
    actors, worker = run(broker, runner, ["a"])
    worker.start()
    try:
        actors["a"].send(7)
        broker.join(queue_name("ns", "a"))
        worker.join()
    finally:
        worker.stop()
    assert runner.calls == [("a", 7)] * 3


def test_a_rebuild_goes_on_a_queue_of_its_own_until_it_is_done(broker):
    runner = RecordingRunner(slices={"a": 3})
    deliver(broker, runner, ["a"], (5,), builds=True)
    assert runner.calls == [("a", 5)] and runner.builds == ["a"] * 3


def test_a_message_names_its_partition_and_an_old_one_means_the_first(broker):
    runner = RecordingRunner()
    deliver(broker, runner, ["a"], (3, 2), (4,))  # the second as queued before partitions: one argument
    assert sorted(zip(runner.calls, runner.partitions_asked, strict=True)) == [(("a", 3), 2), (("a", 4), 0)]


def test_every_partition_of_a_version_being_built_gets_build_messages(broker):
    runner = RecordingRunner(slices={"a": 3}, partitions=3)
    deliver(broker, runner, ["a"], (5,), builds=True)
    assert set(runner.built_partitions) == {0, 1, 2}

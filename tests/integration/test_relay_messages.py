"""The relay's round: one catch-up message waits per projection's queue, however many commits announce the head."""

from __future__ import annotations

import secrets

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from workers.broker import send_all_coalesced, taken


def _queued(broker: RedisBroker, actor: dramatiq.Actor) -> int:
    return broker.client.llen(f"{broker.namespace}:{actor.queue_name}")


def test_a_round_queues_one_message_per_projection_until_it_is_taken(fresh_services):
    broker = RedisBroker(url=fresh_services.broker_url, namespace=f"prism-relay-test-{secrets.token_hex(4)}")
    try:
        actors = [
            dramatiq.actor(broker=broker, actor_name=f"catch_up.{name}", queue_name=f"relay-test.{name}")(lambda t: t)
            for name in ("first", "second")
        ]
        for head in (1, 2, 3):  # three commits' rounds before any worker takes a message
            send_all_coalesced([(a, 0) for a in actors], head)
        assert [_queued(broker, a) for a in actors] == [1, 1]
        taken(actors[0])  # a worker picked the first projection's message up: the next round queues one for it
        send_all_coalesced([(a, 0) for a in actors], 4)
        assert [_queued(broker, a) for a in actors] == [2, 1]

    finally:
        for key in broker.client.scan_iter(f"{broker.namespace}*"):
            broker.client.delete(key)
        broker.close()


def test_each_partition_has_a_message_waiting_of_its_own(fresh_services):
    broker = RedisBroker(url=fresh_services.broker_url, namespace=f"prism-relay-test-{secrets.token_hex(4)}")
    try:
        actor = dramatiq.actor(broker=broker, actor_name="catch_up.split", queue_name="relay-test.split")(
            lambda t, p=0: t
        )
        for head in (1, 2):
            assert len(send_all_coalesced([(actor, p) for p in range(4)], head)) == (4 if head == 1 else 0)
        taken(actor, 2)  # partition 2's message was picked up: only it gets another
        assert send_all_coalesced([(actor, p) for p in range(4)], 3) == [(actor, 2)]
        assert _queued(broker, actor) == 5
    finally:
        for key in broker.client.scan_iter(f"{broker.namespace}*"):
            broker.client.delete(key)
        broker.close()

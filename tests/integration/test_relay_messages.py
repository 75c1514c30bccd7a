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
            send_all_coalesced(actors, head)
        assert [_queued(broker, a) for a in actors] == [1, 1]
        taken(actors[0])  # a worker picked the first projection's message up: the next round queues one for it
        send_all_coalesced(actors, 4)
        assert [_queued(broker, a) for a in actors] == [2, 1]
    finally:
        for key in broker.client.scan_iter(f"{broker.namespace}*"):
            broker.client.delete(key)
        broker.close()

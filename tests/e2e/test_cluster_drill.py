"""The stores as clusters (``PRISM_TEST_STORES=cluster``, the clusters of ``prism services up --cluster``), each
losing a node under reads: a Redis master (its replica takes its slots: reads come back, nothing is lost or applied
twice), an Elasticsearch node (searches never fail), and the dashboards' replica replaying late (a read that asks
for a position waits for it; one that does not answers the replica's older state, with its older position)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.request

import httpx
import pytest

from infra import services
from infra.services import elasticsearch_nodes, redis_cluster
from infra.services.local_process import probe
from infra.services.postgres_replica import PostgresReplica
from projections.layouts.order_search import Names
from projections.layouts.order_summaries import Keys, parse_pointer
from tests.conftest import ON_CLUSTERS, OPERATOR, eventually
from tests.e2e.conftest import open_tenant
from tests.e2e.test_read_your_writes import open_shop
from write import partitions

pytestmark = pytest.mark.skipif(not ON_CLUSTERS, reason="runs on the clusters (PRISM_TEST_STORES=cluster)")

#: What the issue asks of a Redis failover: reads back within this many seconds of it.
READS_BACK_SECONDS = 10.0


def _redis(port: int, *args: str) -> str:
    result = probe(["redis-cli", "-p", str(port), *args])
    return result.stdout if result is not None and result.returncode == 0 else ""


def _master_of(key: str) -> int | None:
    """The port of the master serving ``key``'s slot, as the cluster's map says (asked of a node that answers)."""
    port = next(p for p in redis_cluster.REDIS_CLUSTER_PORTS if _redis(p, "ping").strip() == "PONG")
    slot = int(_redis(port, "cluster", "keyslot", key))
    for line in _redis(port, "cluster", "nodes").splitlines():
        fields = line.split()
        if "master" in fields[2] and "fail" not in fields[2]:
            for served in fields[8:]:
                low, _, high = served.partition("-")
                if int(low) <= slot <= int(high or low):
                    return int(fields[1].split(":")[1].split("@")[0])
    return None  # the master is lost and its replica not promoted yet


async def _audit_drift(http: httpx.AsyncClient) -> list:
    answer = await http.get("/audit", headers=OPERATOR)
    assert answer.status_code == 200, answer.text
    return answer.json()["drift"]


async def test_a_redis_master_lost_its_replica_serves_the_summaries_and_nothing_is_lost(
    http, fresh_services, tenant_id, capsys
):
    await open_tenant(http, tenant_id)
    shop, made = await open_shop(http, tenant_id)
    await shop.get(f"/orders/{made['order']['id']}", made["order"]["position"])
    served = Keys(fresh_services.namespace).serving  # the version readers see, and its partition count
    version, count = parse_pointer(_redis(redis_cluster.REDIS_CLUSTER_PORTS[0], "-c", "get", served).strip() or None)
    keys = Keys(fresh_services.namespace, version, partitions.of(tenant_id, count or 1), cluster=True)
    port = _master_of(keys.checkpoint)
    assert port is not None
    node = redis_cluster.RedisNode(fresh_services, port)
    placed: list[dict] = []

    async def place() -> None:
        order = await http.post(
            "/orders",
            json={
                "customer_id": made["customer"]["id"],
                "items": [{"product_id": made["product"]["id"], "quantity": 1}],
            },
            headers=shop.headers,
        )
        assert order.status_code == 201, order.text
        placed.append(order.json())

    for _ in range(5):
        await place()
    pid = node.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    lost = time.monotonic()
    writes = asyncio.create_task(_keep_placing(place))  # the log goes on while the summaries' master is away

    async def promoted() -> bool:
        return _master_of(keys.checkpoint) not in (None, port)

    async def readable() -> bool:
        last = placed[-1]
        answer = await http.get(
            f"/orders/{last['id']}", params={"min_position": last["position"]}, headers=shop.headers
        )
        return answer.status_code == 200 and answer.headers["X-Prism-Stale"] == "false"

    try:
        await eventually(promoted, 30, "the replica serving the lost master's slots")
        failover = time.monotonic() - lost
        await eventually(readable, READS_BACK_SECONDS, "order pages answering after the failover")
        reads_back = time.monotonic() - lost - failover
    finally:
        writes.cancel()
        await asyncio.gather(writes, return_exceptions=True)
    await asyncio.to_thread(services.up, fresh_services)  # the lost node back, as its replica's replica
    await eventually(lambda: _caught_up(http), 30, "every projection at the head")
    drift = await _audit_drift(http)
    with capsys.disabled():
        print(f"\nredis failover: promoted {failover:.1f} s after the kill, reads back {reads_back:.1f} s after that")
    assert drift == [], drift[:5]
    assert reads_back <= READS_BACK_SECONDS


async def _keep_placing(place) -> None:
    while True:
        await place()


async def _caught_up(http: httpx.AsyncClient) -> bool:
    at = (await http.get("/positions", headers=OPERATOR)).json()
    return all(position == at["head"] for position in at["checkpoints"].values())


def _holding_the_primary(alias: str, nodes: list) -> elasticsearch_nodes.ElasticsearchNode:
    """The node holding the primary copy of the served index's shard: the one whose loss searches must survive."""
    with urllib.request.urlopen(f"http://{nodes[0].address}/_cat/shards/{alias}?format=json&h=prirep,node") as answer:
        shards = json.load(answer)
    [name] = {shard["node"] for shard in shards if shard["prirep"] == "p"}
    return next(node for node in nodes if node.name == name)


async def test_an_elasticsearch_node_lost_searches_never_fail(http, fresh_services, tenant_id, capsys):
    await open_tenant(http, tenant_id)
    shop, made = await open_shop(http, tenant_id)
    await shop.get("/search", made["order"]["position"], q="Gizmo")
    victim = _holding_the_primary(Names(fresh_services.namespace).alias, elasticsearch_nodes.nodes(fresh_services))
    failures: list[str] = []
    answered = 0

    async def search_while(until: asyncio.Event) -> None:
        nonlocal answered
        while not until.is_set():
            answer = await http.get("/search", params={"q": "Gizmo"}, headers=shop.headers)
            if answer.status_code != 200 or [h["order_id"] for h in answer.json()["hits"]] != [made["order"]["id"]]:
                failures.append(f"{answer.status_code} {answer.text[:200]}")
            answered += 1

    done = asyncio.Event()
    searching = asyncio.create_task(search_while(done))
    pid = victim.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    lost = time.monotonic()
    counted = answered

    async def searched_since(n: int) -> bool:
        return answered >= counted + n

    try:
        await eventually(lambda: searched_since(200), 60, "200 searches with a node lost")
    finally:
        done.set()
        await searching
    with capsys.disabled():
        print(f"\nelasticsearch node lost: {answered - counted} searches in {time.monotonic() - lost:.1f} s after")
    # The node stays down (the cluster answers on two): the next start of the clusters brings it back.
    assert failures == []


async def test_a_dashboards_replica_replaying_late_a_read_waits_for_its_position_and_a_plain_read_answers_older(
    http, fresh_services, tenant_id
):
    replica = PostgresReplica(fresh_services)
    await open_tenant(http, tenant_id)
    shop, made = await open_shop(http, tenant_id)
    board_path = f"/customers/{made['customer']['id']}/dashboard"
    before, at_first = await shop.get(board_path, made["order"]["position"])
    assert before["orders"]["total"] == 1
    replica.sql("SELECT pg_wal_replay_pause()")
    try:
        assert replica.replay_paused()
        order = await shop.post(
            "/orders",
            {"customer_id": made["customer"]["id"], "items": [{"product_id": made["product"]["id"], "quantity": 1}]},
            201,
        )
        plain = await http.get(board_path, headers=shop.headers)
        assert plain.status_code == 200 and plain.json()["orders"]["total"] == 1  # the replica's older state
        assert int(plain.headers["X-Prism-Position"]) < order["position"]
        waiting = asyncio.create_task(
            http.get(board_path, params={"min_position": order["position"]}, headers=shop.headers)
        )
        finished, _ = await asyncio.wait({waiting}, timeout=0.5)
        assert not finished  # it waits: the replica has not replayed the order
    finally:
        replica.sql("SELECT pg_wal_replay_resume()")
    answer = await waiting
    assert answer.status_code == 200 and answer.headers["X-Prism-Stale"] == "false", answer.text
    assert answer.json()["orders"]["total"] == 2
    assert int(answer.headers["X-Prism-Position"]) >= order["position"] > at_first

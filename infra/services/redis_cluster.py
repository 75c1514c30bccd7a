"""A Redis Cluster of three masters with a replica each, from Debian's ``redis-server`` in cluster mode, for
``prism services up --cluster``: the order summaries spread over it, while Dramatiq keeps its plain Redis (its
broker's scripts name keys of one queue and of the broker's own sets together, which a cluster refuses)."""

from __future__ import annotations

import time
from pathlib import Path

from infra.services.local_process import ServiceError, probe, run, wait_until
from infra.services.redis_server import Redis
from infra.settings import REDIS_CLUSTER_PORTS, Settings

#: How long a master may be unreachable before its replica takes its slots over (milliseconds).
NODE_TIMEOUT_MS = 2000
#: How long the cluster's map may take to reach every node once formed.
FORMING_SECONDS = 30.0
#: Masters first: ``redis-cli --cluster create`` makes the first third of its nodes masters.
MASTERS = len(REDIS_CLUSTER_PORTS) // 2


class RedisNode(Redis):
    """One node of the local Redis Cluster: a ``redis-server`` of its own port, data folder and pid file."""

    deadline_seconds = 15.0

    def __init__(self, settings: Settings, port: int) -> None:
        self.name = f"redis-cluster-{port}"
        super().__init__(settings)
        self.host, self.port = "127.0.0.1", port
        self.log = self.root / "logs" / f"{self.name}.log"
        self.data = self.root / "redis-cluster" / str(port)

    @property
    def pid_file(self) -> Path:
        return self.root / "run" / f"{self.name}.pid"

    @property
    def process_token(self) -> str:
        return f"127.0.0.1:{self.port} [cluster]"

    def options(self) -> list[str]:
        # The cluster's map (nodes.conf) survives a restart, so a node that comes back rejoins as it was (a lost
        # master as its replica's replica); the data does not, as for the single node.
        return [
            *super().options(),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(NODE_TIMEOUT_MS),
        ]

    def cluster_info(self) -> dict[str, str]:
        result = probe(["redis-cli", "-h", self.host, "-p", str(self.port), "cluster", "info"])
        if result is None or result.returncode != 0:
            return {}
        return dict(line.strip().split(":", 1) for line in result.stdout.splitlines() if ":" in line)

    def role(self) -> str:
        result = probe(["redis-cli", "-h", self.host, "-p", str(self.port), "role"])
        return result.stdout.split("\n", 1)[0].strip() if result is not None and result.returncode == 0 else ""

    @staticmethod
    def after_group(members: list) -> None:
        """The nodes joined into one cluster, which every node then sees whole."""
        form(members)
        if not wait_until(lambda: ready(members), time.monotonic() + FORMING_SECONDS):
            require_ready(members)

    def detail(self) -> str:
        info = self.cluster_info()
        if not info:
            return "not answering"
        return f"{self.role() or 'node'}, cluster {info.get('cluster_state', '?')}"


def nodes(settings: Settings) -> list[RedisNode]:
    return [RedisNode(settings, port) for port in REDIS_CLUSTER_PORTS]


def form(members: list[RedisNode]) -> None:
    """Join the nodes into one cluster, once: a cluster already formed (its map kept across restarts) is left."""
    if members[0].cluster_info().get("cluster_known_nodes", "1") != "1":
        return
    run(
        [
            "redis-cli",
            "--cluster",
            "create",
            *(node.address for node in members),
            "--cluster-replicas",
            "1",
            "--cluster-yes",
        ],
        timeout=60,
    )


def ready(members: list[RedisNode]) -> bool:
    """Every node sees the cluster whole: every slot served, every node known."""
    return all(
        (info := node.cluster_info()).get("cluster_state") == "ok"
        and info.get("cluster_known_nodes") == str(len(members))
        for node in members
    )


def require_ready(members: list[RedisNode]) -> None:
    if not ready(members):
        states = ", ".join(f"{node.port}: {node.cluster_info().get('cluster_state', 'down')}" for node in members)
        raise ServiceError(f"the Redis Cluster did not come together ({states})")

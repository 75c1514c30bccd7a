"""Three Elasticsearch nodes forming one cluster, for ``prism services up --cluster``: the same installation and
plugins as the single node, each node with its own ports, data, logs and pid file, and a 512 MB heap."""

from __future__ import annotations

from pathlib import Path

from infra.services.elasticsearch_server import Elasticsearch
from infra.settings import ELASTICSEARCH_NODE_PORTS, Settings

#: Each node's transport port is its HTTP port plus this (9201 -> 9301).
TRANSPORT_OFFSET = 100
HEAP = "512m"


def node_name(port: int) -> str:
    return f"elasticsearch-{port}"


class ElasticsearchNode(Elasticsearch):
    """One master-eligible data node of the local three-node cluster."""

    def __init__(self, settings: Settings, port: int) -> None:
        super().__init__(settings)
        self.name = node_name(port)
        self.host, self.port = "127.0.0.1", port
        self.log = self.root / "logs" / f"{self.name}.log"
        self.base = self.root / "es-cluster" / str(port)
        self.data, self.es_logs, self.tmp = self.base / "data", self.base / "logs", self.base / "tmp"
        self.run_dir = self.root / "run" / "es-cluster"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    def prepare(self) -> None:
        super().prepare()
        self.heap = HEAP

    def _options(self) -> dict[str, str]:
        peers = [f"127.0.0.1:{port + TRANSPORT_OFFSET}" for port in ELASTICSEARCH_NODE_PORTS]
        options = super()._options()
        del options["discovery.type"]  # one of three, found by each other
        return options | {
            "cluster.name": "prism-cluster",
            "node.name": self.name,
            "transport.port": str(self.port + TRANSPORT_OFFSET),
            "discovery.seed_hosts": ",".join(peers),
            "cluster.initial_master_nodes": ",".join(node_name(port) for port in ELASTICSEARCH_NODE_PORTS),
        }

    def detail(self) -> str:
        health = self._get("/_cluster/health", timeout=3)
        if health is None:
            return "not answering"
        return f"node of {health.get('cluster_name')} ({health.get('number_of_nodes')} nodes, {health.get('status')})"


def nodes(settings: Settings) -> list[ElasticsearchNode]:
    return [ElasticsearchNode(settings, port) for port in ELASTICSEARCH_NODE_PORTS]

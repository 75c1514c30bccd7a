"""Start, stop and report the local services Prism needs, as plain processes.

Prism's development and test setups run Postgres, Redis and Elasticsearch on the
same machine without containers. This package installs what is missing (Debian
packages, the Elasticsearch distribution), keeps every data, log and pid file
under ``settings.services_dir`` and only ever stops processes it started itself,
so the machine's own Postgres cluster or Redis on the default ports stay untouched.

Modules: ``local_process`` (shared helpers and the ``Service`` base class), ``postgres``,
``redis_server``, ``elasticsearch_server``, ``plugins`` (the Elasticsearch plugin builds)
and ``lifecycle`` (start order, ``up``, ``down``, ``stop_service``, ``status``); with ``--cluster``,
``postgres_replica``, ``redis_cluster`` and ``elasticsearch_nodes`` run each store as a cluster.

Usage: ``python -m infra.services up [--cluster]|down|status``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from infra.services.lifecycle import down, remember_clusters, status, stop_service, up
from infra.services.local_process import ServiceError, ServiceStatus, say
from infra.settings import Settings

__all__ = ["ServiceError", "ServiceStatus", "down", "main", "status", "stop_service", "up"]


def _format_table(rows: list[ServiceStatus]) -> str:
    header = ("SERVICE", "STATE", "PID", "ADDRESS", "DETAIL")
    cells = [header] + [
        (r.name, "running" if r.running else "stopped", str(r.pid or "-"), r.address, r.detail) for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1] for row in cells
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m infra.services up|down|status``."""
    parser = argparse.ArgumentParser(prog="python -m infra.services", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="up: each store as a cluster on this machine, used by later commands; down: only the clusters",
    )
    args = parser.parse_args(argv)
    settings = Settings(stores="cluster") if args.cluster and args.command == "up" else Settings()
    try:
        if args.command == "up":
            up(settings)
            if args.cluster:
                remember_clusters(settings)
                say("stores: clusters (a Redis Cluster, three Elasticsearch nodes, a Postgres replica for dashboards)")
        elif args.command == "down":
            down(settings, clusters_only=args.cluster)
        else:
            print(_format_table(status(settings)))
    except ServiceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0

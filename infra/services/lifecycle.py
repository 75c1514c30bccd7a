"""Orchestration of the local services: start order, health waits, up, down, stop and status."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from infra.services import elasticsearch_nodes, redis_cluster
from infra.services.elasticsearch_server import Elasticsearch
from infra.services.local_process import (
    Service,
    ServiceError,
    ServiceStatus,
    exclusive,
    host_port,
    make_dir,
    port_open,
    say,
    tail,
    wait_until,
)
from infra.services.postgres import Postgres
from infra.services.postgres_replica import PostgresReplica
from infra.services.redis_server import Redis
from infra.settings import CLUSTER_MARK, Settings


def _clickhouse_status(settings: Settings) -> ServiceStatus:
    """ClickHouse runs inside the Prism processes (chDB) unless a server URL is configured."""
    if settings.uses_chdb:
        path = settings.chdb_path.absolute()
        return ServiceStatus("clickhouse", True, None, "embedded", f"embedded chDB at {path}")
    host, port = host_port(settings.clickhouse_url, 8123)
    reachable = port_open(host, port)
    detail = f"server {settings.clickhouse_url} ({'reachable' if reachable else 'not reachable'}, not managed here)"
    return ServiceStatus("clickhouse", reachable, None, f"{host}:{port}", detail)


# ---------------------------------------------------------------------------
# Life cycle of one service
# ---------------------------------------------------------------------------


def _groups(settings: Settings) -> list[list[Service]]:
    """Start order, in groups whose members start together (a cluster's nodes wait for each other): the write model
    first, then the read-side stores; with ``stores=cluster``, each store's cluster instead of its single node (the
    single Redis stays, for Dramatiq's broker)."""
    if settings.stores != "cluster":
        return [[Postgres(settings)], [Redis(settings)], [Elasticsearch(settings)]]
    return [
        [Postgres(settings)],
        [PostgresReplica(settings)],
        [Redis(settings)],
        list(redis_cluster.nodes(settings)),
        list(elasticsearch_nodes.nodes(settings)),
    ]


def _services(settings: Settings) -> list[Service]:
    return [service for group in _groups(settings) for service in group]


def _await_health(service: Service, deadline: float) -> None:
    """Wait for the health check; give up early if the process we started has died."""
    seen_pid = False

    def ready_or_dead() -> bool:
        nonlocal seen_pid
        pid = service.pid()
        seen_pid = seen_pid or pid is not None
        return service.healthy() or (seen_pid and pid is None)

    if wait_until(ready_or_dead, deadline) and service.healthy():
        return
    reason = "exited" if seen_pid and service.pid() is None else "did not become healthy"
    raise ServiceError(
        f"{service.name} {reason} within {service.deadline_seconds:.0f}s on {service.address}\n"
        f"{tail(service.log_files)}"
    )


def _start(service: Service) -> None:
    """Install, prepare and launch a service that is not running, then wait until it answers."""
    service.install()
    service.prepare()
    service.clear_stale_pid()
    if port_open(service.host, service.port):
        raise ServiceError(
            f"{service.name}: {service.address} is already taken by a process prism did not start; "
            "stop it or change the port in the settings"
        )
    say(f"{service.name}: starting on {service.address} ... ", end="")
    started = time.monotonic()
    try:
        service.launch()
    except ServiceError as error:
        say("failed")
        raise ServiceError(f"{service.name} failed to start, {error}\n{tail(service.log_files)}") from error
    _await_health(service, started + service.deadline_seconds)
    say(f"ready in {time.monotonic() - started:.1f}s")


def _up_one(service: Service) -> None:
    """Start a service that is not running; restart one whose install changed; otherwise wait until it answers."""
    if not service.managed:
        say(f"{service.name}: external at {service.address}, not managed here")
        return
    pid = service.pid()
    if pid is not None and service.outdated():
        say(f"{service.name}: restarting to apply changes")
        _down_one(service)
        pid = None
    if pid is None:
        _start(service)
    elif service.healthy():
        say(f"{service.name}: already running on {service.address} (pid {pid})")
    else:
        say(f"{service.name}: running (pid {pid}) but not answering yet, waiting")
        _await_health(service, time.monotonic() + service.deadline_seconds)
    service.after_ready()


def _up_group(group: list[Service]) -> None:
    """A group's members started at once (each one's start waits for its own health), then the group completed."""
    if len(group) == 1:
        _up_one(group[0])
    else:
        group[0].install()  # once: the members share their installation
        with ThreadPoolExecutor(len(group)) as pool:
            for done in [pool.submit(_up_one, service) for service in group]:
                done.result()
    group[0].after_group(group)


def _down_one(service: Service) -> None:
    """Stop the service only if its pid file names a live process we started."""
    if not service.managed:
        return
    pid = service.pid()
    if pid is None:
        service.clear_stale_pid()
        say(f"{service.name}: not running")
        return
    say(f"{service.name}: stopping pid {pid} ... ", end="")
    started = time.monotonic()
    service.stop(pid)
    service.clear_stale_pid()
    say(f"stopped in {time.monotonic() - started:.1f}s")


def _status_one(service: Service) -> ServiceStatus:
    pid = service.pid()
    if pid is not None:
        detail = service.detail()
    elif port_open(service.host, service.port):
        detail = "port taken by a process prism did not start" if service.managed else "external, not managed here"
    else:
        detail = "stopped"
    return ServiceStatus(service.name, pid is not None, pid, service.address, detail)


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def _layout(settings: Settings) -> Path:
    """Create services_dir with its shared logs/ and run/ folders (the per-service ones come later)."""
    if os.geteuid() != 0:
        raise ServiceError("starting and stopping the local services needs root (they run as their own users)")
    root = settings.services_dir.absolute()
    make_dir(root)
    make_dir(root / "logs")
    return make_dir(root / "run")


def up(settings: Settings) -> None:
    """Start every local service that is not running yet and wait until each one answers."""
    run_dir = _layout(settings)
    with exclusive(run_dir):
        for group in _groups(settings):
            _up_group(group)


def down(settings: Settings, clusters_only: bool = False) -> None:
    """Stop the services this module started, in reverse start order: every one, whichever form of the stores
    runs, or (``clusters_only``) only those the clusters add; the clusters are no longer the default after."""
    root = settings.services_dir.absolute()
    if not (root / "run").is_dir():
        say("nothing to stop")
        return
    run_dir = _layout(settings)
    single, clusters = (settings.model_copy(update={"stores": form}) for form in ("single", "cluster"))
    everything = {service.name: service for service in [*_services(single), *_services(clusters)]}
    if clusters_only:
        everything = {name: s for name, s in everything.items() if name not in {x.name for x in _services(single)}}
    with exclusive(run_dir):
        for service in reversed(everything.values()):
            _down_one(service)
        (root / CLUSTER_MARK).unlink(missing_ok=True)


def remember_clusters(settings: Settings) -> None:
    """Later commands use the clusters (until ``down``): ``prism services up --cluster`` then ``prism serve``."""
    (settings.services_dir.absolute() / CLUSTER_MARK).touch()


def stop_service(settings: Settings, name: str) -> None:
    """Stop one service this module started (fault drills; ``up`` starts it again)."""
    run_dir = _layout(settings)
    with exclusive(run_dir):
        for service in _services(settings):
            if service.name == name:
                _down_one(service)


def status(settings: Settings) -> list[ServiceStatus]:
    """Report each service; ClickHouse is listed too although it has no process of its own."""
    return [*(_status_one(service) for service in _services(settings)), _clickhouse_status(settings)]

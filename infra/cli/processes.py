"""Commands that run Prism's processes and its local services."""

from __future__ import annotations

import argparse
import sys

from infra.settings import Settings


def services(settings: Settings, args: argparse.Namespace) -> int:
    from infra import services

    return services.main([args.action, *(["--cluster"] if args.cluster else [])]) or 0


def migrate(settings: Settings, _: argparse.Namespace) -> int:
    from write.migrate import upgrade

    upgrade(settings.write_database_url)
    print("write database at the latest schema")
    return 0


def serve(settings: Settings, args: argparse.Namespace) -> int:
    from infra.processes.supervisor import Supervisor

    return Supervisor(settings, args.role).run()


def api(settings: Settings, args: argparse.Namespace) -> int:
    from infra.processes import entrypoints

    entrypoints.api(settings, args.fd)
    return 0


def relay(settings: Settings, _: argparse.Namespace) -> int:
    from infra.processes import pipeline

    pipeline.relay_only(settings)
    return 0


def worker(settings: Settings, args: argparse.Namespace) -> int:
    from infra.ops import rebuilds
    from infra.processes import pipeline
    from projections.registry import writing_to
    from projections.stores.registry import NAMES

    unknown = sorted(set(args.store) - set(NAMES))
    if unknown:
        print(f"error: no store named {', '.join(unknown)} (stores: {', '.join(NAMES)})", file=sys.stderr)
        return 2
    names = rebuilds.known(args.projections) if args.projections else []
    for store in args.store:
        names += [name for name in writing_to(store) if name not in names]
    pipeline.worker_only(settings, names or None, args.takes)
    return 0


def clickhouse_owner(settings: Settings, args: argparse.Namespace) -> int:
    from infra.processes import entrypoints

    entrypoints.clickhouse_owner(settings, args.socket)
    return 0

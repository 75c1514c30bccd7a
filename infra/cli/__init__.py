"""The ``prism`` command line: one module per group of commands, wired into one parser here."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infra.cli import analyst_sql, api_keys, processes, projections, workloads
from infra.settings import Settings


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="prism", description="CQRS read stores kept in sync from one event log.")
    sub = root.add_subparsers(dest="command", required=True)
    services = sub.add_parser("services", help="start, stop or show the local Postgres, Redis and Elasticsearch")
    services.add_argument("action", choices=["up", "down", "status"])
    services.add_argument(
        "--cluster",
        action="store_true",
        help="up: each store as a cluster (a Redis Cluster, three Elasticsearch nodes, a Postgres replica), which "
        "later commands use until `down`; down: only the clusters",
    )
    services.set_defaults(run=processes.services)
    sub.add_parser("migrate", help="bring the write database to the latest schema").set_defaults(run=processes.migrate)
    sub.add_parser("status", help="checkpoint, head and lag of every projection").set_defaults(run=projections.status)
    serve = sub.add_parser(
        "serve",
        help="all of Prism: API processes, a worker per store, a builder while a rebuild runs, the relay and, "
        "with the embedded ClickHouse, its owner; restarted when one dies",
    )
    serve.add_argument(
        "--role",
        choices=["all", "api", "workers"],
        default="all",
        help="what this host runs: the API processes (and, with the embedded ClickHouse, its owner, which answers "
        "analytics), the workers, builders and relay, or all of them (default); any number of hosts of each",
    )
    serve.set_defaults(run=processes.serve, lean=True)
    api = sub.add_parser("api", help="the API and readers alone")
    api.add_argument("--fd", type=int, help="accept on this inherited listening socket (as `serve` runs it)")
    api.set_defaults(run=processes.api, lean=True)
    sub.add_parser("relay", help="the relay alone").set_defaults(run=processes.relay, lean=True)
    worker = sub.add_parser("worker", help="a projection worker alone")
    worker.add_argument("projections", nargs="*", help="the projections whose queues it takes (default: all)")
    worker.add_argument(
        "--store",
        action="append",
        default=[],
        metavar="STORE",
        help="also every projection that writes to this store (repeatable): a worker per store follows new "
        "projections without a change to its command",
    )
    worker.add_argument(
        "--takes",
        choices=["both", "live", "builds"],
        default="both",
        help="their catch-ups (live versions), their rebuilds (at PRISM_BUILDER_NICE), or both",
    )
    worker.set_defaults(run=processes.worker, lean=True)
    owner = sub.add_parser(
        "clickhouse-owner",
        help="the process that holds the embedded ClickHouse: the analytics "
        "projection, and the app on a Unix socket (started by `serve`)",
    )
    owner.add_argument("--socket", required=True, help="path of the Unix socket to answer on")
    owner.set_defaults(run=processes.clickhouse_owner, lean=True)
    dead = sub.add_parser("deadletters", help="list, retry or discard parked poison events")
    dead_sub = dead.add_subparsers(dest="action", required=True)
    listed = dead_sub.add_parser("list", help="parked events (all with --all)")
    listed.add_argument("--projection")
    listed.add_argument("--all", action="store_true")
    for action in ("retry", "discard"):
        dead_sub.add_parser(action).add_argument("id", type=int)
    dead.set_defaults(run=projections.deadletters)
    check = sub.add_parser("audit", help="compare every read store with the write model; --repair re-projects drift")
    check.add_argument("--tenant")
    check.add_argument("--repair", action="store_true")
    check.set_defaults(run=projections.audit)
    rebuild = sub.add_parser(
        "rebuild",
        help="build new versions of projections beside the live ones, then switch "
        "readers to them; roll back or drop the previous version",
    )
    rebuild.add_argument("projections", nargs="*", help="projections to rebuild")
    rebuild.add_argument("--all", action="store_true", help="rebuild every projection")
    rebuild.add_argument("--rollback", metavar="NAME", help="switch readers back to the previous version")
    rebuild.add_argument("--drop-previous", metavar="NAME", help="drop the previous version (no rollback after)")
    rebuild.add_argument("--no-wait", action="store_true", help="ask and return; `prism status` shows progress")
    rebuild.set_defaults(run=projections.rebuild)
    keys = sub.add_parser("keys", help="create, list or revoke API keys (only their hashes are stored)")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    create = keys_sub.add_parser("create", help="issue a key and print it once")
    create.add_argument("--tenant", help="the tenant the key acts as (none for --scopes operator)")
    create.add_argument(
        "--scopes",
        default="commands,read,analytics",
        help="comma-separated: commands, read, analytics; or operator alone",
    )
    create.add_argument("--name", default="", help="what the key is for")
    create.add_argument("--expires", type=int, metavar="DAYS", help="days until the key stops working")
    keys_sub.add_parser("list", help="keys, without their secrets").add_argument("--tenant")
    keys_sub.add_parser("revoke", help="stop a key from working").add_argument("id")
    keys.set_defaults(run=api_keys.keys)
    sql = sub.add_parser("sql", help="run an analyst's read-only SQL on ClickHouse, scoped to one tenant")
    sql.add_argument("query", help="one SELECT over orders, order_lines, order_events, products")
    sql.add_argument("--tenant", required=True)
    sql.add_argument("--format", choices=["table", "csv"], default="table")
    sql.set_defaults(run=analyst_sql.sql)
    demo = sub.add_parser("demo", help="seed a realistic workload and read it back from all four readers")
    demo.add_argument("--orders", type=int, default=1700, help="orders per tenant (3 tenants)")
    demo.set_defaults(run=workloads.demo)
    bench = sub.add_parser(
        "bench",
        help="measure writes, commit-to-visible latency, replay and readers on the real "
        "stores, beside the naive design; prints a table, writes JSON and a PNG chart",
    )
    bench.add_argument("--quick", action="store_true", help="a smaller run (about 6 minutes on 2 cores)")
    bench.add_argument("--out", type=Path, default=Path("var/bench/results"), help="folder for the JSON and PNG")
    bench.add_argument(
        "--profile",
        action="store_true",
        help="py-spy samples of prism serve's processes under each write load and the rebuild",
    )
    bench.add_argument(
        "--partitions",
        action="store_true",
        help="instead: one host with every projection whole, then split into 8, side by side (live path, rebuild)",
    )
    bench.add_argument(
        "--clusters",
        action="store_true",
        help="instead: the replay and the readers' store reads on single nodes, then on the clusters of "
        "`prism services up --cluster` (started if need be), side by side",
    )
    bench.add_argument(
        "--console",
        action="store_true",
        help="instead: the operator console's data route, first paint and sampling cost, with 8 partitions",
    )
    bench.set_defaults(run=workloads.bench)
    return root


def main(argv: list[str] | None = None) -> int:
    from infra import logs, telemetry
    from infra.processes.lean import leave_out_unused
    from infra.processes.parent import follow_parent
    from write.errors import PrismError

    follow_parent()
    args = parser().parse_args(argv)
    if getattr(args, "lean", False):  # serve and the processes it runs: before the settings load the store clients
        leave_out_unused(keep=telemetry.needs())
    settings = Settings()
    role = logs.role(args.command)
    logs.configure(settings, role)
    telemetry.configure(settings, role)
    try:
        return args.run(settings, args)
    except PrismError as error:  # what Prism knows went wrong, said in one line (a traceback is for the unknown)
        print(f"error: {error.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

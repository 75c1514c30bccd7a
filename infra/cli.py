"""The ``prism`` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import sys
from pathlib import Path

from infra.settings import Settings


def _services(settings: Settings, args: argparse.Namespace) -> int:
    from infra import services

    return services.main([args.action]) or 0


def _migrate(settings: Settings, _: argparse.Namespace) -> int:
    from write.migrate import upgrade

    upgrade(settings.write_database_url)
    print("write database at the latest schema")
    return 0


def _status(settings: Settings, _: argparse.Namespace) -> int:
    from infra import bootstrap
    from infra.status import ProjectionStatus, process_table, projection_status, table
    from infra.supervisor import running_processes
    from workers.versions import LIVE, NEXT, PREVIOUS

    served = _running_status(settings)
    if served is not None:  # a running process holds the stores (chDB allows one): ask it
        print(table([ProjectionStatus(**row) for row in served]))
        processes = running_processes(settings)
        if processes is not None:
            print("\n" + process_table(processes))
        return 0

    async def run() -> None:
        engine, stores = bootstrap.write_engine(settings, pool_size=1), await bootstrap.open_stores(settings)
        try:
            projections = await bootstrap.active_projections(engine, stores, (LIVE, NEXT, PREVIOUS))
            print(table(await projection_status(engine, projections)))
        finally:
            await bootstrap.close_stores(stores)
            await engine.dispose()

    try:
        asyncio.run(run())
    except _unreachable() as error:  # evaluated only when something was raised
        print(f"error: a store does not answer ({type(error).__name__}: {error}); start the local services with "
              "`prism services up`, or check the PRISM_*_URL settings", file=sys.stderr)
        return 2
    return 0


def _unreachable() -> tuple[type[BaseException], ...]:
    """What the stores' clients raise when nothing answers at their address."""
    from elastic_transport import ConnectionError as ElasticsearchUnreachable
    from redis.exceptions import ConnectionError as RedisUnreachable

    return OSError, RedisUnreachable, ElasticsearchUnreachable


def _running_status(settings: Settings) -> list[dict] | None:
    """The status rows of a Prism process answering on the configured address, if one does."""
    response = _ask_running(settings, "GET", "/projections")
    return response.json() if response is not None and response.status_code == 200 else None


def _ask_running(settings: Settings, method: str, path: str, **kwargs):
    """An operator's request to a Prism answering on the configured address; None when none answers.

    A running ``serve`` holds the embedded engine (chDB allows one process), so commands that read
    every store ask it instead of opening the stores themselves.
    """
    import httpx

    base = f"http://{settings.api_host}:{settings.api_port}"
    try:
        httpx.get(f"{base}/health", timeout=2)
    except httpx.HTTPError:
        return None
    with _local_key(settings, None, ["operator"]) as headers:
        return httpx.request(method, f"{base}{path}", headers=headers, timeout=600, **kwargs)


@contextlib.contextmanager
def _local_key(settings: Settings, tenant: str | None, scopes: list[str]):
    """Headers with a key issued for one command and revoked after it: who can reach the write database may."""
    from datetime import timedelta

    from infra import bootstrap
    from write import api_keys

    async def issue() -> tuple[str, str]:
        engine = bootstrap.write_engine(settings, pool_size=1)
        try:
            key, plain = await api_keys.issue(engine, tenant, scopes, "prism cli", timedelta(minutes=10))
        finally:
            await engine.dispose()
        return key.id, plain

    async def revoke(key_id: str) -> None:
        engine = bootstrap.write_engine(settings, pool_size=1)
        try:
            await api_keys.revoke(engine, key_id)
        finally:
            await engine.dispose()

    key_id, plain = asyncio.run(issue())
    try:
        yield {"Authorization": f"Bearer {plain}"}
    finally:
        asyncio.run(revoke(key_id))


def _keys(settings: Settings, args: argparse.Namespace) -> int:
    """Create, list or revoke API keys in the write database."""
    from datetime import timedelta

    from infra import bootstrap
    from write import api_keys
    from write.errors import WriteError

    async def run() -> int:
        engine = bootstrap.write_engine(settings, pool_size=1)
        try:
            if args.action == "create":
                expires = timedelta(days=args.expires) if args.expires else None
                key, plain = await api_keys.issue(engine, args.tenant, args.scopes.split(","), args.name, expires)
                print(f"created key {key.id} for {key.tenant_id or 'operators'} with scopes {','.join(key.scopes)}"
                      f"{f', expiring {key.expires_at:%Y-%m-%d %H:%M} UTC' if key.expires_at else ''}; "
                      "it is shown only now:", file=sys.stderr)
                print(plain)
            elif args.action == "list":
                rows = [[k.id, k.tenant_id or "-", ",".join(k.scopes), k.name, f"{k.created_at:%Y-%m-%d %H:%M}",
                         f"{k.expires_at:%Y-%m-%d %H:%M}" if k.expires_at else "-",
                         f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "-"]
                        for k in await api_keys.listing(engine, args.tenant)]
                print(_table(["id", "tenant", "scopes", "name", "created", "expires", "revoked"], rows))
            else:
                key = await api_keys.revoke(engine, args.id)
                print(f"revoked key {key.id} ({key.tenant_id or 'operators'})")
        except WriteError as error:
            print(f"error: {error.message}", file=sys.stderr)
            return 1
        finally:
            await engine.dispose()
        return 0

    return asyncio.run(run())


def _deadletters(settings: Settings, args: argparse.Namespace) -> int:
    from infra import bootstrap
    from workers import dead_letters

    if args.action != "list":
        answer = _ask_running(settings, "POST", f"/deadletters/{args.id}/{args.action}")
        if answer is not None:
            return _print_letter(answer)

    async def run() -> int:
        engine, stores = bootstrap.write_engine(settings, pool_size=1), await bootstrap.open_stores(settings)
        try:
            if args.action == "list":
                found = await dead_letters.listing(engine, args.projection, None if args.all else "parked")
                for d in found:
                    print(f"{d.id:>6}  {d.projection:<20} position {d.position:<10} {d.event_type:<20} {d.status:<9} "
                          f"{d.policy:<4} attempts {d.attempts}  {d.error}")
                print(f"{len(found)} dead letters")
                return 0
            action = dead_letters.retry if args.action == "retry" else dead_letters.discard
            letter = await action(engine, await bootstrap.active_projections(engine, stores), args.id)
            print(f"dead letter {letter.id} ({letter.projection} at {letter.position}) is now {letter.status}")
            return 0
        except dead_letters.DeadLetterError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        finally:
            await bootstrap.close_stores(stores)
            await engine.dispose()

    return asyncio.run(run())


def _print_letter(answer) -> int:
    if answer.status_code != 200:
        print(f"error: {answer.json().get('message', answer.text)}", file=sys.stderr)
        return 1
    letter = answer.json()
    print(f"dead letter {letter['id']} ({letter['projection']} at {letter['position']}) is now {letter['status']}")
    return 0


def _audit(settings: Settings, args: argparse.Namespace) -> int:
    from infra import audit, bootstrap

    params = {"tenant": args.tenant} if args.tenant else {}
    answer = _ask_running(settings, "POST" if args.repair else "GET", "/audit/repair" if args.repair else "/audit",
                          params=params)
    if answer is not None:
        return _print_audit(answer)

    async def run() -> int:
        engine, stores = bootstrap.write_engine(settings, pool_size=2), await bootstrap.open_stores(settings)
        try:
            tenant_ids = [args.tenant] if args.tenant else await audit.tenants(engine)
            drift = await audit.audit(engine, stores, tenant_ids)
            print(audit.report(drift))
            if drift and args.repair:
                live = await bootstrap.active_projections(engine, stores, ("live",))
                projections = {p.name: p for p in live.values()}
                print(f"repaired {await audit.repair(engine, projections, drift)} aggregates")
                drift = await audit.audit(engine, stores, tenant_ids)
                print(audit.report(drift))
            return 1 if drift else 0
        finally:
            await bootstrap.close_stores(stores)
            await engine.dispose()

    return asyncio.run(run())


def _print_audit(answer) -> int:
    from infra import audit

    if answer.status_code != 200:
        print(f"error: {answer.json().get('message', answer.text)}", file=sys.stderr)
        return 1
    body = answer.json()
    if "repaired" in body:
        print(f"repaired {body['repaired']} aggregates")
    print(audit.report([audit.Drift(**d) for d in body["drift"]]))
    return 1 if body["drift"] else 0


def _rebuild(settings: Settings, args: argparse.Namespace) -> int:
    from infra import bootstrap, rebuild
    from projections.registry import PROJECTIONS
    from workers import versions

    async def run() -> int:
        engine = bootstrap.write_engine(settings, pool_size=1)
        try:
            if args.drop_previous:
                name = rebuild.known([args.drop_previous])[0]
                version = await versions.retire_previous(engine, name)
                dropped = await rebuild.wait_dropped(engine, name, version)
                print(f"{name} version {version} " + ("dropped" if dropped else "will be dropped by the next worker"))
                return 0
            if args.rollback:
                name = rebuild.known([args.rollback])[0]
                targets = {name: await versions.start_rollback(engine, name)}
            else:
                targets = await rebuild.start(engine, list(PROJECTIONS) if args.all else args.projections)
            print("building " + ", ".join(f"{n} v{v}" for n, v in targets.items())
                  + "; readers keep the current versions until each has caught up")
            if args.no_wait:
                return 0
            return 0 if await rebuild.watch(engine, targets) else 1
        except versions.VersionError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        finally:
            await engine.dispose()

    if not (args.projections or args.all or args.rollback or args.drop_previous):
        print("error: name a projection, or use --all, --rollback NAME or --drop-previous NAME", file=sys.stderr)
        return 2
    return asyncio.run(run())


def _sql(settings: Settings, args: argparse.Namespace) -> int:
    """An analyst's query: through a running Prism if one answers (it holds the embedded engine), else directly."""
    import httpx

    from readers.analytics_sql import AnalystSql, Limits, Result
    from readers.errors import ReaderError
    from write.api import TENANT_PATTERN

    if not re.match(TENANT_PATTERN, args.tenant):
        print(f"error: tenant {args.tenant!r} must match {TENANT_PATTERN}", file=sys.stderr)
        return 2
    body = {"sql": args.query, "format": "csv" if args.format == "csv" else "json"}
    base = f"http://{settings.api_host}:{settings.api_port}"
    try:
        httpx.get(f"{base}/health", timeout=2)
        with _local_key(settings, args.tenant, ["analytics"]) as headers:
            answer = httpx.post(f"{base}/analytics/sql", json=body, headers=headers,
                                timeout=settings.sql_max_seconds + 30)
    except httpx.HTTPError:
        answer = None
    if answer is not None:
        if answer.status_code != 200:
            print(f"error: {answer.json().get('message', answer.text)}", file=sys.stderr)
            return 1
        print(answer.text if args.format == "csv" else _table(answer.json()["columns"], answer.json()["rows"]))
        return 0

    async def direct() -> int:
        from infra import bootstrap

        stores = await bootstrap.open_stores(settings)
        try:
            analyst = AnalystSql(stores, settings.clickhouse_url, str(settings.chdb_path), Limits.of(settings))
            try:
                found = await analyst.run(args.tenant, args.query, csv=args.format == "csv")
            finally:
                analyst.close()
        except ReaderError as error:
            print(f"error: {error.message}", file=sys.stderr)
            return 1
        finally:
            await bootstrap.close_stores(stores)
        print(_table(found.columns, found.rows) if isinstance(found, Result) else found.decode())
        return 0

    return asyncio.run(direct())


def _table(columns: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in columns]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:], f"({len(rows)} rows)"])


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from infra.demo import INTERRUPTED, run_demo

    try:
        ok = asyncio.run(run_demo(settings, orders=args.orders))
    except KeyboardInterrupt:
        print("\ndemo interrupted; prism serve and its processes were stopped", file=sys.stderr)
        return INTERRUPTED
    print("\ndemo finished: every store agrees with the write model" if ok else "\ndemo finished WITH DRIFT")
    return 0 if ok else 1


def _serve(settings: Settings, _: argparse.Namespace) -> int:
    from infra import runtime

    runtime.serve(settings)
    return 0


def _api(settings: Settings, args: argparse.Namespace) -> int:
    from infra import runtime

    runtime.api(settings, args.fd)
    return 0


def _relay(settings: Settings, _: argparse.Namespace) -> int:
    from infra import runtime

    runtime.relay_only(settings)
    return 0


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from infra import rebuild, runtime

    runtime.worker_only(settings, rebuild.known(args.projections) if args.projections else None, args.takes)
    return 0


def _clickhouse_owner(settings: Settings, args: argparse.Namespace) -> int:
    from infra import runtime

    runtime.clickhouse_owner(settings, args.socket)
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="prism", description="CQRS read stores kept in sync from one event log.")
    sub = root.add_subparsers(dest="command", required=True)
    services = sub.add_parser("services", help="start, stop or show the local Postgres, Redis and Elasticsearch")
    services.add_argument("action", choices=["up", "down", "status"])
    services.set_defaults(run=_services)
    sub.add_parser("migrate", help="bring the write database to the latest schema").set_defaults(run=_migrate)
    sub.add_parser("status", help="checkpoint, head and lag of every projection").set_defaults(run=_status)
    sub.add_parser("serve", help="all of Prism: API processes, a worker per projection, the relay and, with the "
                   "embedded ClickHouse, its owner; restarted when one dies").set_defaults(run=_serve)
    api = sub.add_parser("api", help="the API and readers alone")
    api.add_argument("--fd", type=int, help="accept on this inherited listening socket (as `serve` runs it)")
    api.set_defaults(run=_api)
    sub.add_parser("relay", help="the relay alone").set_defaults(run=_relay)
    worker = sub.add_parser("worker", help="a projection worker alone")
    worker.add_argument("projections", nargs="*", help="the projections whose queues it takes (default: all)")
    worker.add_argument("--takes", choices=["both", "live", "builds"], default="both",
                        help="their catch-ups (live versions), their rebuilds (at PRISM_BUILDER_NICE), or both")
    worker.set_defaults(run=_worker)
    owner = sub.add_parser("clickhouse-owner", help="the process that holds the embedded ClickHouse: the analytics "
                           "projection, and the app on a Unix socket (started by `serve`)")
    owner.add_argument("--socket", required=True, help="path of the Unix socket to answer on")
    owner.set_defaults(run=_clickhouse_owner)
    dead = sub.add_parser("deadletters", help="list, retry or discard parked poison events")
    dead_sub = dead.add_subparsers(dest="action", required=True)
    listed = dead_sub.add_parser("list", help="parked events (all with --all)")
    listed.add_argument("--projection")
    listed.add_argument("--all", action="store_true")
    for action in ("retry", "discard"):
        dead_sub.add_parser(action).add_argument("id", type=int)
    dead.set_defaults(run=_deadletters)
    check = sub.add_parser("audit", help="compare every read store with the write model; --repair re-projects drift")
    check.add_argument("--tenant")
    check.add_argument("--repair", action="store_true")
    check.set_defaults(run=_audit)
    rebuild = sub.add_parser("rebuild", help="build new versions of projections beside the live ones, then switch "
                             "readers to them; roll back or drop the previous version")
    rebuild.add_argument("projections", nargs="*", help="projections to rebuild")
    rebuild.add_argument("--all", action="store_true", help="rebuild every projection")
    rebuild.add_argument("--rollback", metavar="NAME", help="switch readers back to the previous version")
    rebuild.add_argument("--drop-previous", metavar="NAME", help="drop the previous version (no rollback after)")
    rebuild.add_argument("--no-wait", action="store_true", help="ask and return; `prism status` shows progress")
    rebuild.set_defaults(run=_rebuild)
    keys = sub.add_parser("keys", help="create, list or revoke API keys (only their hashes are stored)")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    create = keys_sub.add_parser("create", help="issue a key and print it once")
    create.add_argument("--tenant", help="the tenant the key acts as (none for --scopes operator)")
    create.add_argument("--scopes", default="commands,read,analytics",
                        help="comma-separated: commands, read, analytics; or operator alone")
    create.add_argument("--name", default="", help="what the key is for")
    create.add_argument("--expires", type=int, metavar="DAYS", help="days until the key stops working")
    keys_sub.add_parser("list", help="keys, without their secrets").add_argument("--tenant")
    keys_sub.add_parser("revoke", help="stop a key from working").add_argument("id")
    keys.set_defaults(run=_keys)
    sql = sub.add_parser("sql", help="run an analyst's read-only SQL on ClickHouse, scoped to one tenant")
    sql.add_argument("query", help="one SELECT over orders, order_lines, order_events, products")
    sql.add_argument("--tenant", required=True)
    sql.add_argument("--format", choices=["table", "csv"], default="table")
    sql.set_defaults(run=_sql)
    demo = sub.add_parser("demo", help="seed a realistic workload and read it back from all four readers")
    demo.add_argument("--orders", type=int, default=1700, help="orders per tenant (3 tenants)")
    demo.set_defaults(run=_demo)
    bench = sub.add_parser("bench", help="measure writes, commit-to-visible latency, replay and readers on the real "
                           "stores, beside the naive design; prints a table, writes JSON and a PNG chart")
    bench.add_argument("--quick", action="store_true", help="a smaller run (under 3 minutes)")
    bench.add_argument("--out", type=Path, default=Path("var/bench/results"), help="folder for the JSON and PNG")
    bench.add_argument("--profile", action="store_true", help="py-spy samples of prism serve's processes under each write load and the rebuild")
    bench.set_defaults(run=_bench)
    return root


def _bench(settings: Settings, args: argparse.Namespace) -> int:
    from infra.bench.run import run

    run(settings, quick=args.quick, out=args.out, profile=args.profile)
    return 0


def main(argv: list[str] | None = None) -> int:
    from infra.supervisor import follow_parent
    from projections.layouts.clickhouse import EmbeddedEngineBusy

    follow_parent()
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.run(Settings(), args)
    except EmbeddedEngineBusy as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""Commands on the projections: status, rebuilds, dead letters, audit."""

from __future__ import annotations

import argparse
import asyncio
import sys

from infra.cli.running import ask_running, running_status
from infra.settings import Settings


def status(settings: Settings, _: argparse.Namespace) -> int:
    from infra import bootstrap
    from infra.ops.status import (
        ProjectionStatus,
        process_table,
        projection_status,
        table,
    )
    from infra.processes.supervisor import running_processes, running_supervisor
    from workers.versions import LIVE, NEXT, PREVIOUS

    served = running_status(settings)
    if served is not None:  # a running process holds the stores (chDB allows one): ask it
        print(table([ProjectionStatus(**row) for row in served]))
        processes, supervisor = running_processes(settings), running_supervisor(settings)
        if processes is not None and supervisor is not None:
            print("\n" + process_table([supervisor, *processes]))
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
    except Exception as error:
        from projections.stores import registry
        from write.errors import StoreUnavailable

        failure = registry.translate(error)
        if not isinstance(failure, StoreUnavailable):
            raise
        print(
            f"error: {failure.message}; start the local services with `prism services up`, or check the "
            "PRISM_*_URL settings",
            file=sys.stderr,
        )
        return 2
    return 0


def rebuild(settings: Settings, args: argparse.Namespace) -> int:
    from infra import bootstrap
    from infra.ops import rebuilds
    from projections.registry import PROJECTIONS
    from workers import versions

    async def run() -> int:
        engine = bootstrap.write_engine(settings, pool_size=1)
        try:
            if args.drop_previous:
                name = rebuilds.known([args.drop_previous])[0]
                version = await versions.retire_previous(engine, name)
                dropped = await rebuilds.wait_dropped(engine, name, version)
                print(f"{name} version {version} " + ("dropped" if dropped else "will be dropped by the next worker"))
                return 0
            if args.rollback:
                name = rebuilds.known([args.rollback])[0]
                targets = {name: await versions.start_rollback(engine, name)}
            else:
                names = list(PROJECTIONS) if args.all else args.projections
                counts = {name: bootstrap.partitions_of(settings, name) for name in rebuilds.known(names)}
                targets = await rebuilds.start(engine, names, counts)
            print(
                "building "
                + ", ".join(f"{n} v{v}" for n, v in targets.items())
                + "; readers keep the current versions until each has caught up"
            )
            if args.no_wait:
                return 0
            return 0 if await rebuilds.watch(engine, targets) else 1
        except versions.VersionError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        finally:
            await engine.dispose()

    if not (args.projections or args.all or args.rollback or args.drop_previous):
        print("error: name a projection, or use --all, --rollback NAME or --drop-previous NAME", file=sys.stderr)
        return 2
    return asyncio.run(run())


def deadletters(settings: Settings, args: argparse.Namespace) -> int:
    from infra import bootstrap
    from workers import dead_letters

    if args.action != "list":
        answer = ask_running(settings, "POST", f"/deadletters/{args.id}/{args.action}")
        if answer is not None:
            return print_letter(answer)

    async def run() -> int:
        engine, stores = bootstrap.write_engine(settings, pool_size=1), await bootstrap.open_stores(settings)
        try:
            if args.action == "list":
                found = await dead_letters.listing(engine, args.projection, None if args.all else "parked")
                for d in found:
                    print(
                        f"{d.id:>6}  {d.projection:<20} position {d.position:<10} {d.event_type:<20} {d.status:<9} "
                        f"{d.policy:<4} attempts {d.attempts}  {d.error}"
                    )
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


def print_letter(answer) -> int:
    if answer.status_code != 200:
        print(f"error: {answer.json().get('message', answer.text)}", file=sys.stderr)
        return 1
    letter = answer.json()
    print(f"dead letter {letter['id']} ({letter['projection']} at {letter['position']}) is now {letter['status']}")
    return 0


def audit(settings: Settings, args: argparse.Namespace) -> int:
    from infra import bootstrap
    from infra.ops import audit

    params = {"tenant": args.tenant} if args.tenant else {}
    answer = ask_running(
        settings, "POST" if args.repair else "GET", "/audit/repair" if args.repair else "/audit", params=params
    )
    if answer is not None:
        return print_audit(answer)

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


def print_audit(answer) -> int:
    from infra.ops import audit

    if answer.status_code != 200:
        print(f"error: {answer.json().get('message', answer.text)}", file=sys.stderr)
        return 1
    body = answer.json()
    if "repaired" in body:
        print(f"repaired {body['repaired']} aggregates")
    print(audit.report([audit.Drift(**d) for d in body["drift"]]))
    return 1 if body["drift"] else 0

"""Commands that run a workload: the demo and the benchmarks."""

from __future__ import annotations

import argparse
import asyncio
import sys

from infra.settings import Settings


def demo(settings: Settings, args: argparse.Namespace) -> int:
    from infra.demo.workload import INTERRUPTED, run_demo

    try:
        ok = asyncio.run(run_demo(settings, orders=args.orders))
    except KeyboardInterrupt:
        print("\ndemo interrupted; prism serve and its processes were stopped", file=sys.stderr)
        return INTERRUPTED
    print("\ndemo finished: every store agrees with the write model" if ok else "\ndemo finished WITH DRIFT")
    return 0 if ok else 1


def bench(settings: Settings, args: argparse.Namespace) -> int:
    if args.partitions:
        return _partitions_bench(settings, args)
    if args.console:
        from infra.bench import console

        print(f"results: {console.run(settings, quick=args.quick, out=args.out)}")
        return 0
    if args.clusters:
        from infra.bench import clusters

        print(f"results: {clusters.run(settings, quick=args.quick, out=args.out)}")
        return 0
    from infra.bench.run import run

    run(settings, quick=args.quick, out=args.out, profile=args.profile)
    return 0


def _partitions_bench(settings: Settings, args: argparse.Namespace) -> int:
    import json
    from datetime import UTC, datetime
    from pathlib import Path

    from infra.bench import partitions
    from infra.bench.run import machine

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = Path("var/bench") / f"{stamp}-partitions"
    results = asyncio.run(partitions.compare(settings, folder, args.quick, log=print))
    results |= {"started_at": stamp, "machine": machine()}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{stamp}-partitions.json"
    path.write_text(json.dumps(results, indent=1))
    print(partitions.table(results))
    print(f"results: {path}")
    return 0

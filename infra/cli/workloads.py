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
    from infra.bench.run import run

    run(settings, quick=args.quick, out=args.out, profile=args.profile)
    return 0

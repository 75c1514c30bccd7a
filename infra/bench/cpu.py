"""CPU per process over a stretch of a benchmark, read from ``/proc``: which of Prism's processes, and which
store, used the cores."""

from __future__ import annotations

import os
import time
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds() -> dict[int, tuple[str, float]]:
    """pid -> (name, user+system CPU seconds) of every process now."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            args = [a.decode(errors="replace") for a in (entry / "cmdline").read_bytes().split(b"\0") if a]
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        found[int(entry.name)] = (_name(args, stat), (int(fields[11]) + int(fields[12])) / _TICKS)
    return found


def _name(args: list[str], stat: str) -> str:
    """``prism api``, ``prism worker order_search``, ``postgres``, ``java`` (Elasticsearch), …"""
    if "infra.cli" in args:
        role = args[args.index("infra.cli") + 1 :]
        return "prism " + " ".join(a for a in role if not a.startswith(("-", "/")) and not a.isdigit())
    if any(a.endswith("/prism") for a in args[:2]):
        return "prism " + " ".join(args[2:3])
    return stat[stat.index("(") + 1 : stat.rindex(")")]


class CpuMeter:
    """``with CpuMeter() as meter: …`` then ``meter.shares()``: per process name, % of one core over the block."""

    def __enter__(self) -> CpuMeter:
        self.before, self.started = _cpu_seconds(), time.monotonic()
        return self

    def __exit__(self, *_) -> None:
        self.after, self.seconds = _cpu_seconds(), time.monotonic() - self.started

    def shares(self, at_least: float = 1.0) -> dict[str, float]:
        """% of one core per process name (processes of one name summed, e.g. two API processes), busiest first."""
        totals: dict[str, float] = {}
        for pid, (name, cpu) in self.after.items():
            used = cpu - self.before.get(pid, (name, 0.0))[1] if pid in self.before else cpu
            totals[name] = totals.get(name, 0.0) + used
        shares = {name: round(100 * used / self.seconds, 1) for name, used in totals.items()}
        return dict(sorted(((n, s) for n, s in shares.items() if s >= at_least), key=lambda item: -item[1]))

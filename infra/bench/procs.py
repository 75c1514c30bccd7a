"""The processes a benchmark accounts for, read from ``/proc``: ``prism serve``'s by role, the stores' by store, and
their memory.

The local services are shared with anything else running on the machine: Postgres is
counted as its background processes and the backends of the bench's own databases
only (a backend's title names its database); Redis and Elasticsearch are one process
each and are counted whole.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
#: The report's store names, by what runs them.
STORE_PROCESSES = {"postgres": "postgres", "redis-server": "redis", "java": "elasticsearch"}
#: Postgres backends are titled ``postgres: <user> <database> <client> <state>``; the rest are its own processes.
_BACKEND_PARTS = 4


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    comm: str
    args: tuple[str, ...]
    cpu_seconds: float


def read(pid: int) -> Proc | None:
    """One process now; None when it is gone (or not ours to read)."""
    base = Path("/proc") / str(pid)
    try:
        stat = (base / "stat").read_text()
        args = tuple(a.decode(errors="replace") for a in (base / "cmdline").read_bytes().split(b"\0") if a)
    except OSError:
        return None
    return parse_stat(pid, stat, args)


def parse_stat(pid: int, stat: str, args: tuple[str, ...]) -> Proc:
    """A ``/proc/PID/stat`` line: the command name sits in parentheses and may itself hold spaces or parentheses."""
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat.rsplit(")", 1)[1].split()
    return Proc(pid, int(fields[1]), comm, args, (int(fields[11]) + int(fields[12])) / _TICKS)


def everything() -> dict[int, Proc]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (proc := read(int(entry.name))) is not None:
            found[proc.pid] = proc
    return found


def descendants(procs: dict[int, Proc], roots: Iterable[int]) -> set[int]:
    """The roots (those alive) and every process under them."""
    children: dict[int, list[int]] = {}
    for proc in procs.values():
        children.setdefault(proc.ppid, []).append(proc.pid)
    found, todo = set(), [r for r in roots if r in procs]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += children.get(pid, [])
    return found


def role(args: tuple[str, ...]) -> str:
    """A Prism process's role from its command line: ``api``, ``worker order_search``, ``builder order_search``,
    ``relay``, ``clickhouse owner``, ``supervisor``; a bench replay child ``replay <projection>``."""
    if "infra.cli" in args:
        rest = list(args[args.index("infra.cli") + 1 :])
        command = rest[0] if rest else "?"
        if command == "worker":
            takes = rest[rest.index("--takes") + 1] if "--takes" in rest[:-1] else "both"
            return f"{'builder' if takes == 'builds' else 'worker'} {rest[1]}"
        return {"serve": "supervisor", "clickhouse-owner": "clickhouse owner"}.get(command, command)
    if "infra.bench.replay" in args:
        return f"replay {args[args.index('infra.bench.replay') + 1]}"
    return Path(args[0]).name if args else "?"


def store_of(proc: Proc, databases: Iterable[str]) -> str | None:
    """The store a process runs, or None: not a store's, or a Postgres backend of another database."""
    store = STORE_PROCESSES.get(proc.comm)
    if store == "elasticsearch" and not any("elasticsearch" in a for a in proc.args):
        return None
    if store == "postgres" and len(proc.args) == 1 and proc.args[0].startswith("postgres: "):
        parts = proc.args[0].split()
        is_backend = len(parts) >= _BACKEND_PARTS and ("(" in parts[3] or parts[3] == "[local]")
        if is_backend and parts[2] not in set(databases):
            return None
    return store


@dataclass(frozen=True)
class Memory:
    rss_kb: int
    pss_kb: int


def parse_rollup(text: str) -> Memory:
    """``/proc/PID/smaps_rollup``: its ``Rss:`` and ``Pss:`` lines, in kB."""
    values = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in ("Rss", "Pss") and rest.split():
            values[name] = int(rest.split()[0])
    return Memory(values.get("Rss", 0), values.get("Pss", 0))


def memory(pid: int) -> Memory | None:
    try:
        return parse_rollup((Path("/proc") / str(pid) / "smaps_rollup").read_text())
    except OSError:
        return None


def tree_memory(root: int) -> list[dict]:
    """Every process under ``root`` (itself included): role, pid, RSS and PSS in MB."""
    procs = everything()
    rows = []
    for pid in sorted(descendants(procs, [root])):
        found = memory(pid)
        if found is not None:
            rows.append(
                {
                    "process": role(procs[pid].args),
                    "pid": pid,
                    "rss_mb": round(found.rss_kb / 1024, 1),
                    "pss_mb": round(found.pss_kb / 1024, 1),
                }
            )
    return rows

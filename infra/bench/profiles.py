"""``prism bench --profile``: py-spy samples ``prism serve`` and every process under it while a benchmark window
runs, and says per process where its samples went.

Each window leaves its collapsed stacks (``profile-<label>.txt``, which flame graph
tools and speedscope read) and a summary beside them (``profile-<label>-top.txt``):
per process, the cores its Python used and the functions it was in most.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path

#: Samples per second of each process.
RATE = 100
#: Functions listed per process in a summary.
TOP = 8


def _py_spy() -> str:
    """Beside this interpreter (the project's environment installs it), else on the PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy") or "py-spy"


class Profiler:
    """``with profiler(pid, label): …`` records the process tree under ``pid`` while the block runs."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @contextmanager
    def __call__(self, pid: int, label: str):
        raw = self.folder / f"profile-{label}.txt"
        child = subprocess.Popen(
            [
                _py_spy(),
                "record",
                "--pid",
                str(pid),
                "--subprocesses",
                "--rate",
                str(RATE),
                "--format",
                "raw",
                "--output",
                str(raw),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield
        finally:
            child.send_signal(signal.SIGINT)  # py-spy writes what it sampled, then exits
            child.wait(timeout=60)
        if raw.exists():
            (self.folder / f"profile-{label}-top.txt").write_text("\n".join(summary(raw.read_text())) + "\n")


def summary(collapsed: str) -> list[str]:
    """Per process, busiest first: its samples and the leaf functions that took most of them."""
    leaves: dict[str, Counter] = defaultdict(Counter)
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        processes = [f for f in frames if f.startswith("process ")]
        code = [f for f in frames if not f.startswith("process ")]
        owner = _process_name(processes[-1]) if processes else "?"
        leaves[owner][code[-1] if code else "(no Python frame)"] += int(count)
    out = []
    for owner, counts in sorted(leaves.items(), key=lambda item: -item[1].total()):
        out.append(f"{owner}: {counts.total()} samples")
        out += [f"  {100 * n / counts.total():5.1f}%  {frame}" for frame, n in counts.most_common(TOP)]
    return out


def _process_name(frame: str) -> str:
    """``process 123:"… -m infra.cli worker order_search --builds"`` -> ``worker order_search --builds``."""
    command = frame.split(":", 1)[1].strip('"')
    return command.split("infra.cli", 1)[1].strip() if "infra.cli" in command else command

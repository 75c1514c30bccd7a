"""``prism serve``: Prism as processes by concern, started, watched and stopped by one command.

The children, each a ``prism`` command of its own:

- ``api-N``: the API and readers, ``api_processes`` of them accepting on one listening
  socket that the supervisor binds and holds (a restarted child takes it over; no
  connection waits on a port nobody listens to);
- ``worker-<store>``: one Dramatiq worker per read store (``redis``, ``elasticsearch``,
  ``dashboards``) for its projections' live versions, a thread per projection, so a slow
  store never waits behind another's batch, nor takes the API's interpreter;
- ``builder-<store>``: started only while one of the store's projections has a version
  being built or dropped (the supervisor looks at the versions table every few seconds),
  stopped once none has for ``builder_linger_seconds``; it takes their rebuild queues at a
  lower priority (``builder_nice``), so a rebuild never holds up the live versions' catch-ups,
  and the rebuilds of two stores run in two interpreters;
- ``clickhouse``: with the embedded engine, the one process that opens it (chDB allows
  one per data path). It runs the analytics projection, its rebuilds on a thread of their
  own, and the whole app on a Unix socket; API processes forward to it what reads the
  engine (``infra.http.middleware.to_owner``).

The relay runs in the supervisor itself, on a thread (``supervisor_work``), beside the
watch on rebuilds: no interpreter of its own, and out of the API processes.

A child that exits is started again after a pause that doubles while it keeps failing.
SIGINT or SIGTERM stops every child (SIGKILL after a grace period). Children run in a
session of their own, so a terminal's Ctrl-C reaches the supervisor alone and it stops
them in order; a child whose supervisor dies is sent SIGTERM by the kernel
(``PR_SET_PDEATHSIG``), so none is orphaned. Every child's output reaches the
supervisor's stderr, each line prefixed with the child's name; with JSON logs
(``PRISM_LOG_FORMAT=json``) each child logs its name as its role, and its lines pass
through as they are, one object each.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from infra.logs import ROLE_ENV
from infra.processes.parent import PARENT_ENV
from infra.processes.supervisor_work import SupervisorWork
from infra.settings import Settings
from projections.registry import writing_to
from projections.stores.registry import NAMES
from write.errors import PrismError

log = logging.getLogger("prism.serve")
#: What a child writes that is not a line of its log (a print, a crash of the interpreter), with JSON logs.
output = logging.getLogger("prism.serve.output")
#: The first pause before a restart, and the longest.
FIRST_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS = 0.25, 30.0
#: A child that ran this long before exiting counts as healthy: its next restart is quick again.
HEALTHY_SECONDS = 30.0
#: How long children get to finish their work after SIGTERM, before SIGKILL.
STOP_GRACE_SECONDS = 20.0


@dataclass(frozen=True)
class ChildSpec:
    name: str
    args: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    fds: tuple[int, ...] = ()
    #: Started only when there is work for it (a builder: a rebuild of one of ``store``'s projections), not with the
    #: others.
    on_demand: bool = False
    store: str = ""


@dataclass
class Child:
    spec: ChildSpec
    process: subprocess.Popen | None = None
    #: Whether it should run: an on-demand child is not wanted until there is work for it.
    wanted: bool = True
    #: When an on-demand child that is no longer wanted gets SIGKILL if still running (monotonic).
    kill_at: float | None = None
    started_at: float = 0.0
    wall_started: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    restarts: int = 0


def owner_socket(settings: Settings) -> Path:
    """Where the embedded engine's owner answers: beside the engine's data folder."""
    return settings.chdb_path.resolve().parent / f"{settings.namespace}-clickhouse.sock"


def processes_file(settings: Settings) -> Path:
    """Where a running ``serve`` keeps the list of its children, for ``prism status``."""
    return settings.chdb_path.resolve().parent / f"{settings.namespace}-serve.json"


def running_processes(settings: Settings) -> list[dict] | None:
    """The children of the ``serve`` running on these settings (name, pid, state, restarts, up since); None if none
    runs. An on-demand child with nothing to do is listed ``idle``, without a pid."""
    record = _running_record(settings)
    return None if record is None else record["children"]


def running_supervisor(settings: Settings) -> dict | None:
    """The supervisor of the ``serve`` running on these settings, as a row of ``running_processes`` (named ``serve``,
    ``serve (relay)`` when the relay runs in it); None if none runs."""
    record = _running_record(settings)
    if record is None:
        return None
    name = "serve (relay)" if record.get("relay") else "serve"
    return {"name": name, "pid": record["supervisor"], "state": "running", "restarts": 0, "since": record["since"]}


def _running_record(settings: Settings) -> dict | None:
    try:
        record = json.loads(processes_file(settings).read_text())
        os.kill(record["supervisor"], 0)
    except (OSError, ValueError, KeyError):
        return None
    return record


#: What a host of ``prism serve --role`` runs: everything, the API (with the embedded engine's owner, which answers
#: analytics), or the workers, builders and relay.
ALL, API, WORKERS = "all", "api", "workers"


def children(settings: Settings, listener_fd: int, role: str = ALL) -> list[ChildSpec]:
    """What ``serve`` runs for these settings, on a host of this role."""
    embedded = writing_to("clickhouse") if settings.uses_chdb and role != WORKERS else []
    api_env = {"PRISM_CLICKHOUSE_OWNER_SOCKET": str(owner_socket(settings))} if embedded else {}
    specs = [ChildSpec("clickhouse", ("clickhouse-owner", "--socket", str(owner_socket(settings))))] if embedded else []
    specs += [
        ChildSpec(f"api-{n}", ("api", "--fd", str(listener_fd)), api_env, (listener_fd,))
        for n in range(1, settings.api_processes + 1)
        if role != WORKERS
    ]
    stores = worker_stores(settings) if role != API else []
    specs += [ChildSpec(f"worker-{store}", ("worker", "--store", store, "--takes", "live")) for store in stores]
    specs += [
        ChildSpec(f"builder-{store}", ("worker", "--store", store, "--takes", "builds"), store=store, on_demand=True)
        for store in stores
    ]
    return specs


def worker_stores(settings: Settings) -> list[str]:
    """The stores whose projections ``serve``'s worker processes run: all but the embedded engine, whose owner runs
    its projections itself."""
    return [store for store in NAMES if writing_to(store) and not (store == "clickhouse" and settings.uses_chdb)]


class Supervisor:
    def __init__(self, settings: Settings, role: str = ALL) -> None:
        if role == API:  # the relay goes with the workers
            settings = settings.model_copy(update={"serve_relay": False})
        self.settings, self.role = settings, role
        self.json = settings.log_format == "json"
        if self.json:  # what the supervisor says is news in the log, as on a terminal, at the default level
            log.setLevel(logging.INFO)
        self.children: list[Child] = []
        self._stopping = threading.Event()
        self._output = threading.Lock()
        self.wall_started = time.time()
        stores = worker_stores(settings)
        self.work = SupervisorWork(settings, settings.serve_relay, [n for s in stores for n in writing_to(s)])

    def run(self) -> int:
        listener = self._listen()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self._stopping.set())
        self.children = [
            Child(spec, wanted=not spec.on_demand) for spec in children(self.settings, listener.fileno(), self.role)
        ]
        for child in self.children:
            if child.wanted:
                self._start(child)
        self.work.start()
        self._record()
        self._say(
            f"{self.settings.host_name} ({self.role}) serving on "
            f"http://{self.settings.api_host}:{self.settings.api_port} with "
            + ", ".join(f"{c.spec.name} (pid {c.process.pid})" for c in self.children if c.process)
            + (", the relay in this process" if self.settings.serve_relay else "")
            + "; stop with Ctrl-C"
        )
        try:
            while not self._stopping.wait(0.1):
                if self._on_demand() | self._watch():
                    self._record()
        finally:
            self.work.stop(STOP_GRACE_SECONDS)
            self._stop_all()
            listener.close()
            processes_file(self.settings).unlink(missing_ok=True)
        self._say("stopped; no child left")
        return 0

    def _listen(self) -> socket.socket:
        listener = socket.create_server((self.settings.api_host, self.settings.api_port), backlog=2048)
        listener.set_inheritable(True)
        return listener

    def _start(self, child: Child) -> None:
        env = (
            self.settings.child_environment()
            | child.spec.env
            | {PARENT_ENV: str(os.getpid()), ROLE_ENV: child.spec.name, "PYTHONUNBUFFERED": "1"}
        )
        child.process = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", *child.spec.args],
            env=env,
            pass_fds=child.spec.fds,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        child.started_at, child.wall_started, child.restart_at = time.monotonic(), time.time(), None
        threading.Thread(
            target=self._pump, args=(child.spec.name, child.process), daemon=True, name=f"output-{child.spec.name}"
        ).start()

    def _on_demand(self) -> bool:
        """Start a store's builder when a rebuild of one of its projections waits for it; stop it once none has been
        seen for ``builder_linger_seconds``. True if any changed."""
        changed = False
        for child in (c for c in self.children if c.spec.on_demand):
            needed = self.work.rebuild_seen_within(self.settings.builder_linger_seconds, writing_to(child.spec.store))
            running = child.process is not None and child.process.poll() is None
            if needed and not child.wanted and not running:  # one that is still stopping is started once gone
                child.wanted, child.failures, child.kill_at = True, 0, None
                self._say(f"a rebuild is waiting: starting {child.spec.name}")
                self._start(child)
                changed = True
            elif not needed and child.wanted:
                child.wanted, child.restart_at = False, None
                if running and child.process is not None:
                    self._say(
                        f"no rebuild left for {self.settings.builder_linger_seconds:.0f}s: stopping {child.spec.name}"
                    )
                    child.process.terminate()
                    child.kill_at = time.monotonic() + STOP_GRACE_SECONDS
                changed = True
            elif running and child.kill_at is not None and time.monotonic() >= child.kill_at and child.process:
                child.process.kill()
            elif not running and not child.wanted and child.process is not None:
                child.process, child.kill_at, changed = None, None, True  # stopped as asked: idle now
        return changed

    def _watch(self) -> bool:
        """Schedule a restart for each wanted child that exited; start those whose pause is over. True if any
        changed."""
        now, changed = time.monotonic(), False
        for child in (c for c in self.children if c.wanted):
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.restarts += 1
                    self._start(child)
                    changed = True
                continue
            code = child.process.poll() if child.process else None
            if code is None or child.process is None:
                continue
            changed = True
            child.failures = 0 if now - child.started_at >= HEALTHY_SECONDS else child.failures + 1
            pause = min(FIRST_BACKOFF_SECONDS * 2 ** max(child.failures - 1, 0), MAX_BACKOFF_SECONDS)
            child.restart_at = now + pause
            log.warning(
                "%s (pid %d) %s after %.1fs; starting it again in %.2fs",
                child.spec.name,
                child.process.pid,
                _exit(code),
                now - child.started_at,
                pause,
            )
        return changed

    def _record(self) -> None:
        """The children as they are now, written whole (renamed into place) for ``prism status``."""
        record = {
            "supervisor": os.getpid(),
            "since": self.wall_started,
            "relay": self.settings.serve_relay,
            "children": [
                {
                    "name": c.spec.name,
                    "pid": c.process.pid if c.process else None,
                    "state": _state(c),
                    "restarts": c.restarts,
                    "since": c.wall_started,
                }
                for c in self.children
            ],
        }
        path = processes_file(self.settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_suffix(".tmp")
        scratch.write_text(json.dumps(record))
        scratch.replace(path)

    def _stop_all(self) -> None:
        running = [c.process for c in self.children if c.process and c.process.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in running:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log.warning("pid %d did not stop within %.0fs of SIGTERM: killed", process.pid, STOP_GRACE_SECONDS)
                process.kill()
                process.wait()

    def _pump(self, name: str, process: subprocess.Popen) -> None:
        """Copy a child's output to ours, a line at a time, each line under the child's name. With JSON logs a
        child's JSON line passes as it is (it names its role), and any other line becomes a record of ours under
        the child's role: every line stays one object."""
        assert process.stdout is not None  # started with stdout=PIPE
        for raw in iter(process.stdout.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            if self.json and not line.startswith("{"):
                output.warning("%s", line, extra={"role": name})
                continue
            with self._output:
                sys.stderr.write(f"{line}\n" if self.json else f"{name:<28}| {line}\n")
                sys.stderr.flush()
        process.stdout.close()

    def _say(self, message: str) -> None:
        if self.json:
            log.info(message)
            return
        with self._output:
            print(f"prism serve: {message}", file=sys.stderr, flush=True)


def _state(child: Child) -> str:
    if not child.wanted:
        return "stopping" if child.process is not None else "idle"
    return "restarting" if child.restart_at is not None else "running"


def _exit(code: int) -> str:
    return f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"


class ServeFailed(PrismError):
    """``prism serve`` did not become ready; its log says why."""


@asynccontextmanager
async def serving(settings: Settings, log_path: Path, timeout: float = 120.0):
    """``prism serve`` on these settings as a child of this process, ready (every store answers) until the block
    ends, then stopped as Ctrl-C stops it; its output goes to ``log_path`` (its folder made if missing)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as out:
        child = subprocess.Popen(  # noqa: ASYNC220  # starting a process does not wait for it
            [sys.executable, "-m", "infra.cli", "serve"],
            env=settings.child_environment(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            await _ready(f"http://{settings.api_host}:{settings.api_port}", child, log_path, timeout)
            yield child
        finally:
            child.send_signal(signal.SIGINT)
            try:
                child.wait(timeout=STOP_GRACE_SECONDS + 10)
            except subprocess.TimeoutExpired:
                child.kill()


async def _ready(base: str, child: subprocess.Popen, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() < deadline:
            if child.poll() is not None:
                raise ServeFailed(f"prism serve exited with {child.returncode}; see {log_path}")
            try:
                if (await client.get(f"{base}/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise ServeFailed(f"prism serve was not ready within {timeout:.0f}s; see {log_path}")

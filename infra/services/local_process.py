"""What every local service shares: commands, pid files, directories, locks, and the ``Service`` life cycle.

Everything a service module needs to install, launch, probe and stop its server lives here,
together with the ``Service`` base class that gives each service the same life cycle, the
errors and status rows the package reports, and the constants more than one module uses.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from infra.settings import Settings
from write.errors import PrismError

#: The Elasticsearch installation, shared by the server (elasticsearch_server) and its plugin builds (plugins).
ES_VERSION = "8.19.7"
OPT_DIR = Path("/opt/prism")
ES_HOME = OPT_DIR / f"elasticsearch-{ES_VERSION}"
ES_USER = "prism-es"
JAVA_HOME = Path("/usr/lib/jvm/java-17-openjdk-amd64")

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
LOG_TAIL_LINES = 30
STOP_TIMEOUT_SECONDS = 60.0


class ServiceError(PrismError):
    """A local service could not be installed, started, checked or stopped."""


@dataclass(frozen=True)
class ServiceStatus:
    """One row of ``status``: whether the process Prism started is alive, and where."""

    name: str
    running: bool
    pid: int | None
    address: str
    detail: str


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def say(message: str, end: str = "\n") -> None:
    """Progress goes to stdout unbuffered so a slow start shows what it waits for."""
    print(message, end=end, flush=True)


def _as_user(user: str | None, command: Sequence[str]) -> list[str]:
    """Postgres and Elasticsearch refuse to run as root, so their commands go through runuser."""
    if user is None:
        return [str(part) for part in command]
    return ["runuser", "-u", user, "--", *[str(part) for part in command]]


def run(
    command: Sequence[str | Path],
    *,
    user: str | None = None,
    stdin: str | None = None,
    cwd: Path | None = None,
    timeout: float = 120.0,
) -> subprocess.CompletedProcess[str]:
    """Run a short command and turn a failure into a ServiceError carrying its output."""
    argv = _as_user(user, [str(part) for part in command])
    try:
        result = subprocess.run(
            argv, input=stdin, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ServiceError(f"{' '.join(argv)} failed: {error}") from error
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()
        raise ServiceError(f"{' '.join(argv)} exited with {result.returncode}: {output}")
    return result


def launch_daemon(command: Sequence[str | Path], log: Path, *, user: str | None, cwd: Path, timeout: float) -> None:
    """Start a self-daemonizing server with its output appended to its log.

    The output goes to a file, not a pipe: daemons inherit the descriptors and a pipe
    would keep this call waiting for as long as the server lives.
    """
    argv = _as_user(user, [str(part) for part in command])
    with log.open("ab") as out:
        try:
            code = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                timeout=timeout,
                check=False,
            ).returncode
        except subprocess.TimeoutExpired as error:
            raise ServiceError(f"{' '.join(argv)} did not return within {timeout:.0f}s") from error
    if code != 0:
        raise ServiceError(f"exited with {code}: {shlex.join(argv)}")


def probe(command: Sequence[str | Path], timeout: float = 5.0) -> subprocess.CompletedProcess[str] | None:
    """Run a health-check client; None when it is missing or hangs, which both mean "not healthy"."""
    try:
        return subprocess.run(
            [str(part) for part in command], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None


def _apt_install(*packages: str) -> None:
    """A fresh Debian machine lacks the servers; install them the same way the docs say."""
    if os.geteuid() != 0:
        raise ServiceError(f"installing {', '.join(packages)} needs root; run this command as root")
    say(f"installing Debian packages: {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *packages]):
        result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ServiceError(f"{' '.join(argv)} failed: {result.stderr.strip()[-2000:]}")


def ensure_file(path: Path, package: str) -> None:
    """Install the Debian package that provides ``path`` unless it is already there."""
    if not path.exists():
        _apt_install(package)
    if not path.exists():
        raise ServiceError(f"{path} is still missing after installing {package}")


def host_port(url: str, default_port: int) -> tuple[str, int]:
    """Ports and hosts come from the settings URLs so clients and servers always agree."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def _is_loopback(host: str) -> bool:
    """Only services on this machine are ours to start; anything else is external."""
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Tells a free port from one some other process already listens on."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _read_pid(path: Path) -> int | None:
    """First line of a pid file (Postgres' postmaster.pid has more lines after it)."""
    try:
        first = path.read_text().splitlines()[0].strip()
        return int(first)
    except (OSError, IndexError, ValueError):
        return None


def _process_matches(pid: int, token: str) -> bool:
    """True when ``pid`` is a live, non-zombie process whose command line contains ``token``.

    The token guards against pid reuse: a stale pid file must never make us signal
    an unrelated process. Zombies count as dead because this machine's init may not
    reap daemons whose parent exited.
    """
    proc = Path(f"/proc/{pid}")
    try:
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        state = next(line for line in (proc / "status").read_text().splitlines() if line.startswith("State:"))
    except (OSError, StopIteration):
        return False
    return "Z" not in state.split()[1] and token in cmdline


def tail(paths: Sequence[Path], lines: int = LOG_TAIL_LINES) -> str:
    """Last lines of the logs, so a failure message says why without opening files."""
    chunks = []
    for path in paths:
        try:
            text = path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            continue
        if text:
            chunks.append(f"--- {path} ---\n" + "\n".join(text))
    return "\n".join(chunks) or "(no log output)"


def make_dir(path: Path, owner: str | None = None, mode: int = 0o755) -> Path:
    """Create a directory owned by the service user that has to write into it."""
    path.mkdir(parents=True, exist_ok=True)
    if owner is not None:
        account = pwd.getpwnam(owner)
        os.chown(path, account.pw_uid, account.pw_gid)
    os.chmod(path, mode)
    return path


def own_file(path: Path, owner: str) -> Path:
    """Pre-create a log file that a non-root server appends to."""
    path.touch(exist_ok=True)
    account = pwd.getpwnam(owner)
    os.chown(path, account.pw_uid, account.pw_gid)
    return path


def chown_tree(root: Path, owner: str) -> None:
    """Elasticsearch writes its keystore into its config directory, so it must own it."""
    account = pwd.getpwnam(owner)
    for directory, _, files in os.walk(root):
        os.chown(directory, account.pw_uid, account.pw_gid)
        for name in files:
            os.chown(os.path.join(directory, name), account.pw_uid, account.pw_gid)


def check_writable(path: Path, user: str) -> None:
    """Fail early and clearly when a service user cannot reach its directory (e.g. under /root)."""
    if subprocess.run(_as_user(user, ["test", "-w", str(path)]), check=False).returncode != 0:
        raise ServiceError(f"user {user} cannot write {path}; put PRISM_SERVICES_DIR somewhere every user can traverse")


def ensure_system_user(name: str) -> None:
    """Elasticsearch refuses to run as root, so it gets a login-less system account."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name])


def wait_until(check: Callable[[], bool], deadline: float, interval: float = 0.25) -> bool:
    """Poll ``check`` until it passes or the monotonic ``deadline`` passes."""
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _terminate(pid: int, token: str, sig: int, timeout: float) -> None:
    """Signal a server and wait for it to exit; SIGKILL only if it ignores the request."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    if wait_until(lambda: not _process_matches(pid, token), time.monotonic() + timeout):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not wait_until(lambda: not _process_matches(pid, token), time.monotonic() + 10):
        raise ServiceError(f"process {pid} did not exit after SIGKILL")


@contextlib.contextmanager
def exclusive(run_dir: Path) -> Iterator[None]:
    """Two concurrent ``up``/``down`` calls would race on the same pid files; serialize them."""
    with (run_dir / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


# ---------------------------------------------------------------------------
# Services
# ---------------------------------------------------------------------------


class Service:
    """Common life cycle: install, prepare, launch, wait for health, stop by pid file."""

    name = ""
    deadline_seconds = 30.0

    def __init__(self, settings: Settings, host: str, port: int) -> None:
        self.settings = settings
        self.root = settings.services_dir.absolute()
        self.host = host
        self.port = port
        self.log = self.root / "logs" / f"{self.name}.log"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def managed(self) -> bool:
        """Services pointed at another machine are used as they are, never started here."""
        return _is_loopback(self.host)

    @property
    def pid_file(self) -> Path:
        raise NotImplementedError

    @property
    def process_token(self) -> str:
        """A command-line fragment that identifies our own server process."""
        raise NotImplementedError

    @property
    def log_files(self) -> list[Path]:
        return [self.log]

    def install(self) -> None:
        """Make the server binaries available."""

    def prepare(self) -> None:
        """Create directories, users and configuration before a start."""

    def launch(self) -> None:
        raise NotImplementedError

    def healthy(self) -> bool:
        raise NotImplementedError

    def outdated(self) -> bool:
        """Whether the running server must restart to pick up what install() would change."""
        return False

    def after_ready(self) -> None:
        """Idempotent provisioning once the server answers (roles, databases...)."""

    @staticmethod
    def after_group(members: list[Service]) -> None:
        """Once every member of a group started together answers: what makes them one (a cluster's forming)."""

    def detail(self) -> str:
        return "ready" if self.healthy() else "not answering"

    def pid(self) -> int | None:
        """Pid of the server we started, or None when its pid file is missing or stale."""
        try:
            pid = _read_pid(self.pid_file)
        except PermissionError:
            return None
        return pid if pid is not None and _process_matches(pid, self.process_token) else None

    def clear_stale_pid(self) -> None:
        """A pid file left by a crash would block the next start or mislead ``status``."""
        if self.pid() is None:
            with contextlib.suppress(FileNotFoundError):
                self.pid_file.unlink()

    def stop(self, pid: int) -> None:
        _terminate(pid, self.process_token, signal.SIGTERM, STOP_TIMEOUT_SECONDS)

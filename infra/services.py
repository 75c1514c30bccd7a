"""Start, stop and report the local services Prism needs, as plain processes.

Prism's development and test setups run Postgres, Redis and Elasticsearch on the
same machine without containers. This module installs what is missing (Debian
packages, the Elasticsearch distribution), keeps every data, log and pid file
under ``settings.services_dir`` and only ever stops processes it started itself,
so the machine's own Postgres cluster or Redis on the default ports stay untouched.

Usage: ``python -m infra.services up|down|status``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import shutil
import shlex
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from infra.settings import Settings

PG_VERSION = "15"
PG_BIN = Path(f"/usr/lib/postgresql/{PG_VERSION}/bin")
PG_USER = "postgres"
PG_MAX_CONNECTIONS = 300

ES_VERSION = "8.19.7"
ES_ARTIFACT = f"org.elasticsearch.distribution.integ-test-zip:elasticsearch:{ES_VERSION}:zip"
MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
OPT_DIR = Path("/opt/prism")
ES_CACHE_DIR = OPT_DIR / "cache"
ES_HOME = OPT_DIR / f"elasticsearch-{ES_VERSION}"
ES_USER = "prism-es"
JAVA_HOME = Path("/usr/lib/jvm/java-17-openjdk-amd64")
JAVA_RELEASE = "17"
#: Our own small plugins, each built from its folder here, for what the integ-test distribution
#: lacks: prism-root serves ``GET /``, prism-analysis adds token filters (folding, lowercase, edge n-grams).
PLUGINS_SOURCE = Path(__file__).resolve().parent / "elasticsearch"
PLUGINS = ("prism-root", "prism-analysis")
BUILD_DIR = OPT_DIR / "build"
#: Local services share a small machine with the tests; a larger heap only slows everything else.
ES_MAX_HEAP_BYTES = 1 << 30

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
LOG_TAIL_LINES = 30
STOP_TIMEOUT_SECONDS = 60.0


class ServiceError(Exception):
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


def _say(message: str, end: str = "\n") -> None:
    """Progress goes to stdout unbuffered so a slow start shows what it waits for."""
    print(message, end=end, flush=True)


def _as_user(user: str | None, command: Sequence[str]) -> list[str]:
    """Postgres and Elasticsearch refuse to run as root, so their commands go through runuser."""
    if user is None:
        return [str(part) for part in command]
    return ["runuser", "-u", user, "--", *[str(part) for part in command]]


def _run(
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


def _launch(command: Sequence[str | Path], log: Path, *, user: str | None, cwd: Path, timeout: float) -> None:
    """Start a self-daemonizing server with its output appended to its log.

    The output goes to a file, not a pipe: daemons inherit the descriptors and a pipe
    would keep this call waiting for as long as the server lives.
    """
    argv = _as_user(user, command)
    with log.open("ab") as out:
        try:
            code = subprocess.run(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, timeout=timeout
            ).returncode
        except subprocess.TimeoutExpired as error:
            raise ServiceError(f"{' '.join(argv)} did not return within {timeout:.0f}s") from error
    if code != 0:
        raise ServiceError(f"exited with {code}: {shlex.join(argv)}")


def _probe(command: Sequence[str | Path], timeout: float = 5.0) -> subprocess.CompletedProcess[str] | None:
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
    _say(f"installing Debian packages: {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *packages]):
        result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ServiceError(f"{' '.join(argv)} failed: {result.stderr.strip()[-2000:]}")


def _ensure_file(path: Path, package: str) -> None:
    """Install the Debian package that provides ``path`` unless it is already there."""
    if not path.exists():
        _apt_install(package)
    if not path.exists():
        raise ServiceError(f"{path} is still missing after installing {package}")


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    """Ports and hosts come from the settings URLs so clients and servers always agree."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def _is_loopback(host: str) -> bool:
    """Only services on this machine are ours to start; anything else is external."""
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
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


def _tail(paths: Sequence[Path], lines: int = LOG_TAIL_LINES) -> str:
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


def _make_dir(path: Path, owner: str | None = None, mode: int = 0o755) -> Path:
    """Create a directory owned by the service user that has to write into it."""
    path.mkdir(parents=True, exist_ok=True)
    if owner is not None:
        account = pwd.getpwnam(owner)
        os.chown(path, account.pw_uid, account.pw_gid)
    os.chmod(path, mode)
    return path


def _own_file(path: Path, owner: str) -> Path:
    """Pre-create a log file that a non-root server appends to."""
    path.touch(exist_ok=True)
    account = pwd.getpwnam(owner)
    os.chown(path, account.pw_uid, account.pw_gid)
    return path


def _chown_tree(root: Path, owner: str) -> None:
    """Elasticsearch writes its keystore into its config directory, so it must own it."""
    account = pwd.getpwnam(owner)
    for directory, _, files in os.walk(root):
        os.chown(directory, account.pw_uid, account.pw_gid)
        for name in files:
            os.chown(os.path.join(directory, name), account.pw_uid, account.pw_gid)


def _check_writable(path: Path, user: str) -> None:
    """Fail early and clearly when a service user cannot reach its directory (e.g. under /root)."""
    if subprocess.run(_as_user(user, ["test", "-w", str(path)]), check=False).returncode != 0:
        raise ServiceError(
            f"user {user} cannot write {path}; put PRISM_SERVICES_DIR somewhere every user can traverse"
        )


def _ensure_system_user(name: str) -> None:
    """Elasticsearch refuses to run as root, so it gets a login-less system account."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        _run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name])


def _wait_until(check: Callable[[], bool], deadline: float, interval: float = 0.25) -> bool:
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
    if _wait_until(lambda: not _process_matches(pid, token), time.monotonic() + timeout):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not _wait_until(lambda: not _process_matches(pid, token), time.monotonic() + 10):
        raise ServiceError(f"process {pid} did not exit after SIGKILL")


def _heap_size(value: str) -> str:
    """Validate the Elasticsearch heap setting (JVM syntax like 512m or 1g) and its 1g ceiling."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = value.strip().lower()
    try:
        size = int(text[:-1]) * units[text[-1]] if text[-1:] in units else int(text)
    except (ValueError, KeyError) as error:
        raise ServiceError(f"PRISM_ELASTICSEARCH_HEAP={value!r} is not a JVM size like 512m or 1g") from error
    if not 0 < size <= ES_MAX_HEAP_BYTES:
        raise ServiceError(f"PRISM_ELASTICSEARCH_HEAP={value!r} must be at most 1g")
    return text


@contextlib.contextmanager
def _exclusive(run_dir: Path) -> Iterator[None]:
    """Two concurrent ``up``/``down`` calls would race on the same pid files; serialize them."""
    with (run_dir / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


# ---------------------------------------------------------------------------
# Services
# ---------------------------------------------------------------------------


class _Service:
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


class _Postgres(_Service):
    """A private Postgres 15 cluster under services_dir/pg, run by the ``postgres`` user.

    It uses initdb/pg_ctl directly rather than pg_createcluster so nothing lands in
    /etc/postgresql and Debian's ``main`` cluster is never involved.
    """

    name = "postgres"
    deadline_seconds = 60.0

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, *_host_port(settings.write_database_url, 55432))
        self.base = self.root / "pg"
        self.data = self.base / "data"
        self.socket_dir = self.base / "socket"

    @property
    def pid_file(self) -> Path:
        return self.data / "postmaster.pid"

    @property
    def process_token(self) -> str:
        return str(self.data)

    def install(self) -> None:
        _ensure_file(PG_BIN / "initdb", "postgresql")

    def prepare(self) -> None:
        for directory in (self.base, self.socket_dir):
            _make_dir(directory, PG_USER, 0o700)
        _own_file(self.log, PG_USER)
        _check_writable(self.base, PG_USER)
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
        self._write_config()

    def _initdb(self) -> None:
        """Local socket logins use peer auth (the postgres user); TCP logins need a password."""
        _run(
            [PG_BIN / "initdb", "-D", self.data, "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8",
             "--auth-local=peer", "--auth-host=scram-sha-256"],
            user=PG_USER, cwd=self.base,
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\ninclude_if_exists = 'prism.conf'\n")

    def _write_config(self) -> None:
        """Rewritten before each start so a changed port in the settings takes effect."""
        conf = self.data / "prism.conf"
        conf.write_text(
            "# Written by infra/services.py on every start; edit the settings instead.\n"
            f"listen_addresses = '{self.host}'\n"
            f"port = {self.port}\n"
            f"max_connections = {PG_MAX_CONNECTIONS}\n"
            f"unix_socket_directories = '{self.socket_dir}'\n"
        )
        account = pwd.getpwnam(PG_USER)
        os.chown(conf, account.pw_uid, account.pw_gid)

    def launch(self) -> None:
        _launch(
            [PG_BIN / "pg_ctl", "start", "-D", self.data, "-l", self.log, "-w", "-t", int(self.deadline_seconds)],
            self.log, user=PG_USER, cwd=self.base, timeout=self.deadline_seconds + 10,
        )

    def healthy(self) -> bool:
        probe = _probe([PG_BIN / "pg_isready", "-q", "-h", self.host, "-p", str(self.port), "-t", "2"])
        return probe is not None and probe.returncode == 0

    def after_ready(self) -> None:
        """Create the application roles and databases named in the settings, idempotently."""
        for url in (self.settings.write_database_url, self.settings.dashboards_database_url):
            parts = urlsplit(url)
            self._psql(_PROVISION_SQL, user=parts.username or "prism", password=parts.password or "prism",
                       db=parts.path.lstrip("/"))

    def _psql(self, script: str, **variables: str) -> None:
        """psql variables quote names and passwords, so odd characters cannot inject SQL."""
        assigns = [arg for key, value in variables.items() for arg in ("-v", f"{key}={value}")]
        _run(
            [PG_BIN / "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.socket_dir, "-p", str(self.port),
             "-U", "postgres", "-d", "postgres", *assigns, "-f", "-"],
            user=PG_USER, stdin=script, cwd=self.base,
        )

    def detail(self) -> str:
        state = "accepting connections" if self.healthy() else "not answering"
        return f"{state}; data {self.data}"

    def stop(self, pid: int) -> None:
        """Fast shutdown: a plain SIGTERM would wait for every client to disconnect."""
        _run([PG_BIN / "pg_ctl", "stop", "-D", self.data, "-m", "fast", "-w", "-t", int(STOP_TIMEOUT_SECONDS)],
             user=PG_USER, cwd=self.base, timeout=STOP_TIMEOUT_SECONDS + 10)


_PROVISION_SQL = r"""
SELECT format('CREATE ROLE %I LOGIN CREATEDB PASSWORD %L', :'user', :'password')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user') \gexec
SELECT format('ALTER ROLE %I LOGIN CREATEDB PASSWORD %L', :'user', :'password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
"""


class _Redis(_Service):
    """Our own redis-server instance, separate from any Debian one on 6379, without persistence."""

    name = "redis"
    deadline_seconds = 15.0

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, *_host_port(settings.redis_url, 56379))
        self.data = self.root / "redis"

    @property
    def pid_file(self) -> Path:
        return self.root / "run" / "redis.pid"

    @property
    def process_token(self) -> str:
        return "redis-server"

    def install(self) -> None:
        _ensure_file(Path("/usr/bin/redis-server"), "redis-server")

    def prepare(self) -> None:
        _make_dir(self.data, mode=0o700)

    def launch(self) -> None:
        _launch(
            ["redis-server", "--bind", self.host, "--port", str(self.port), "--daemonize", "yes",
             "--pidfile", self.pid_file, "--logfile", self.log, "--dir", self.data,
             "--save", "", "--appendonly", "no"],
            self.log, user=None, cwd=self.data, timeout=self.deadline_seconds,
        )

    def healthy(self) -> bool:
        probe = _probe(["redis-cli", "-h", self.host, "-p", str(self.port), "ping"])
        return probe is not None and probe.stdout.strip() == "PONG"

    def detail(self) -> str:
        return "PONG" if self.healthy() else "not answering"


class _Plugin:
    """Builds and installs one of our plugins from its folder under ``PLUGINS_SOURCE``.

    A folder holds Java sources under ``src`` and, at its top, the files the plugin tool expects
    next to the jar: a descriptor (``plugin-descriptor.properties`` for a classic plugin,
    ``stable-plugin-descriptor.properties`` for one on the stable API, whose ``named_components.json``
    comes along). The build lands in ``BUILD_DIR`` and is keyed by a fingerprint of those files and
    the Elasticsearch version, so it reruns only after a change; the plugin is reinstalled whenever
    the copy in the distribution differs from that build.
    """

    def __init__(self, service: str, name: str) -> None:
        self.service = service
        self.name = name
        self.source = PLUGINS_SOURCE / name
        self.build = BUILD_DIR / name
        self.bundle = self.build / f"{name}-{ES_VERSION}.zip"
        self.stamp = self.build / "fingerprint"
        self.installed = ES_HOME / "plugins" / name

    def ensure(self) -> None:
        """Build if needed and install what is not current; only while the node is down."""
        if not self.current():
            self._install()

    def current(self) -> bool:
        """Whether the installed copy matches the sources, building them first if they changed."""
        fingerprint = self._fingerprint()
        if not self._built(fingerprint):
            self._build(fingerprint)
        return self._installed_matches()

    def _sources(self) -> list[Path]:
        return sorted((self.source / "src").rglob("*.java"))

    def _bundled(self) -> list[Path]:
        return sorted(path for path in self.source.iterdir() if path.is_file())

    def _fingerprint(self) -> str:
        digest = hashlib.sha256(f"{ES_VERSION}\0{JAVA_RELEASE}\0".encode())
        for path in [*self._bundled(), *self._sources()]:
            digest.update(f"{path.relative_to(self.source)}\0".encode())
            digest.update(path.read_bytes() + b"\0")
        return digest.hexdigest()

    def _built(self, fingerprint: str) -> bool:
        try:
            return self.bundle.is_file() and self.stamp.read_text().strip() == fingerprint
        except OSError:
            return False

    @staticmethod
    def _contents(path: Path) -> str:
        """Descriptors are templates for the versions; other files (JSON naming classes) go as they are."""
        if path.suffix != ".properties":
            return path.read_text()
        return string.Template(path.read_text()).substitute(
            plugin_version=ES_VERSION, java_version=JAVA_RELEASE, elasticsearch_version=ES_VERSION
        )

    def _build(self, fingerprint: str) -> None:
        """Compile against the distribution's own jars, then zip jar and descriptor as the plugin tool expects.

        The build happens in a staging folder renamed into place, so a failed build never looks current.
        """
        _ensure_file(JAVA_HOME / "bin" / "javac", "openjdk-17-jdk-headless")
        _say(f"{self.service}: building the {self.name} plugin")
        _make_dir(BUILD_DIR)
        staging = Path(tempfile.mkdtemp(dir=BUILD_DIR, prefix=f".{self.name}-"))
        try:
            classes = staging / "classes"
            _run([JAVA_HOME / "bin" / "javac", "--release", JAVA_RELEASE, "-encoding", "UTF-8",
                  "-cp", f"{ES_HOME / 'lib'}/*", "-d", classes, *self._sources()], timeout=300)
            jar = staging / f"{self.name}-{ES_VERSION}.jar"
            _run([JAVA_HOME / "bin" / "jar", "--create", "--file", jar, "-C", classes, "."], timeout=120)
            with zipfile.ZipFile(staging / self.bundle.name, "w", zipfile.ZIP_DEFLATED) as bundle:
                for path in self._bundled():
                    bundle.writestr(path.name, self._contents(path))
                bundle.write(jar, jar.name)
            (staging / self.stamp.name).write_text(fingerprint + "\n")
            shutil.rmtree(self.build, ignore_errors=True)
            staging.rename(self.build)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        os.chmod(self.build, 0o755)

    def _installed_matches(self) -> bool:
        """The installed plugin is current when every file of the built bundle is there unchanged."""
        try:
            with zipfile.ZipFile(self.bundle) as bundle:
                return all(
                    (self.installed / entry.filename).read_bytes() == bundle.read(entry)
                    for entry in bundle.infolist()
                    if not entry.is_dir()
                )
        except (OSError, zipfile.BadZipFile):
            return False

    def _install(self) -> None:
        """Install through the distribution's plugin tool, which validates the descriptor first.

        Plugins are read only when the node starts, so this runs while it is down. The tool
        runs as root here; the installed files are then handed to the user running the node.
        """
        _say(f"{self.service}: installing the {self.name} plugin")
        shutil.rmtree(self.installed, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(dir=BUILD_DIR, prefix=".plugin-tool-"))
        try:
            _run(["env", "-i", f"PATH={SYSTEM_PATH}", f"ES_JAVA_HOME={JAVA_HOME}",
                  f"CLI_JAVA_OPTS=-Djava.io.tmpdir={tmp}", "LANG=C.UTF-8",
                  ES_HOME / "bin" / "elasticsearch-plugin", "install", "--batch", self.bundle.as_uri()],
                 cwd=ES_HOME, timeout=300)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _ensure_system_user(ES_USER)
        _chown_tree(self.installed, ES_USER)


class _Elasticsearch(_Service):
    """A real single-node Elasticsearch from the Maven Central integ-test distribution.

    That distribution carries only the core modules, which is all Prism's indexes need,
    and is far smaller than the default one. Its missing root endpoint comes from our own
    ``prism-root`` plugin and its missing token filters from ``prism-analysis`` (see _Plugin).
    It runs as ``prism-es`` with Debian's JDK 17.
    """

    name = "elasticsearch"
    deadline_seconds = 120.0

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, *_host_port(settings.elasticsearch_url, 9200))
        self.base = self.root / "es"
        self.data = self.base / "data"
        self.es_logs = self.base / "logs"
        self.tmp = self.base / "tmp"
        self.run_dir = self.root / "run" / "es"
        self.heap = ""  # validated in prepare(), before anything is started

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "elasticsearch.pid"

    @property
    def process_token(self) -> str:
        return f"-Des.path.home={ES_HOME}"

    @property
    def log_files(self) -> list[Path]:
        return [self.log, self.es_logs / "prism.log"]

    def install(self) -> None:
        _ensure_file(JAVA_HOME / "bin" / "java", "openjdk-17-jre-headless")
        if not (ES_HOME / "bin" / "elasticsearch").exists():
            self._unpack(self._download())
        for plugin in self._plugins():
            plugin.ensure()

    def _plugins(self) -> list[_Plugin]:
        return [_Plugin(self.name, name) for name in PLUGINS]

    def outdated(self) -> bool:
        """Plugins are read only when the node starts, so a new or changed one needs a restart."""
        return not all([plugin.current() for plugin in self._plugins()])

    def _download(self) -> Path:
        """Maven resolves the artifact through ~/.m2, so repeated installs cost nothing."""
        archive = ES_CACHE_DIR / f"elasticsearch-{ES_VERSION}.zip"
        if archive.exists():
            return archive
        _ensure_file(Path("/usr/bin/mvn"), "maven")
        _make_dir(ES_CACHE_DIR)
        _say(f"{self.name}: fetching {ES_ARTIFACT}")
        _run(["mvn", "-q", f"{MAVEN_DEPENDENCY_PLUGIN}:copy", f"-Dartifact={ES_ARTIFACT}",
              f"-DoutputDirectory={ES_CACHE_DIR}"], cwd=ES_CACHE_DIR, timeout=900)
        return archive

    def _unpack(self, archive: Path) -> None:
        """Unpack next to the target and rename, so an interrupted unpack never looks installed.

        zipfile drops Unix permissions, so the modes stored in the archive are put back.
        """
        _make_dir(OPT_DIR)
        staging = Path(tempfile.mkdtemp(dir=OPT_DIR, prefix=".unpack-"))
        try:
            with zipfile.ZipFile(archive) as bundle:
                for entry in bundle.infolist():
                    target = bundle.extract(entry, staging)
                    if mode := (entry.external_attr >> 16) & 0o777:
                        os.chmod(target, mode)
            (staging / ES_HOME.name).rename(ES_HOME)
        except (zipfile.BadZipFile, OSError) as error:
            archive.unlink(missing_ok=True)
            raise ServiceError(f"could not unpack {archive} (removed, retry to download again): {error}") from error
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        os.chmod(ES_HOME, 0o755)

    def prepare(self) -> None:
        """Runs only while the node is down, so its temporary directory can start empty."""
        self.heap = _heap_size(self.settings.elasticsearch_heap)
        _ensure_system_user(ES_USER)
        shutil.rmtree(self.tmp, ignore_errors=True)
        for directory in (self.base, self.data, self.es_logs, self.tmp, self.run_dir):
            _make_dir(directory, ES_USER, 0o750)
        _chown_tree(ES_HOME / "config", ES_USER)
        _check_writable(self.data, ES_USER)

    def _server_options(self) -> list[str]:
        """Settings for a throwaway local node; each one exists in the integ-test distribution.

        ``ingest.geoip.downloader.enabled`` is deliberately absent: that distribution has no
        ingest-geoip module (so nothing downloads) and Elasticsearch refuses unknown settings.
        """
        options = {
            "cluster.name": "prism",
            "discovery.type": "single-node",
            "network.host": self.host,
            "http.port": str(self.port),
            "path.data": str(self.data),
            "path.logs": str(self.es_logs),
            "xpack.security.enabled": "false",
            "action.destructive_requires_name": "false",
            "cluster.routing.allocation.disk.threshold_enabled": "false",
        }
        return [arg for key, value in options.items() for arg in ("-E", f"{key}={value}")]

    def _environment(self) -> list[str]:
        """A clean environment: no stray JAVA_TOOL_OPTIONS or JAVA_HOME from the caller.

        The launcher JVM (CLI_JAVA_OPTS) gets the same temporary directory as the node,
        otherwise it leaves empty ``final-flags*`` folders in /tmp on every start.
        """
        return ["env", "-i", f"PATH={SYSTEM_PATH}", f"ES_JAVA_HOME={JAVA_HOME}",
                f"ES_JAVA_OPTS=-Xms{self.heap} -Xmx{self.heap}", f"ES_TMPDIR={self.tmp}",
                f"CLI_JAVA_OPTS=-Djava.io.tmpdir={self.tmp}", "LANG=C.UTF-8"]

    def launch(self) -> None:
        """``-d`` returns once the node has started (or failed), with a pid file written by it.

        The working directory is the log directory because jvm.options writes gc.log
        and crash files relative to it.
        """
        command = [*self._environment(), ES_HOME / "bin" / "elasticsearch", "-d", "-p", self.pid_file,
                   *self._server_options()]
        _launch(command, self.log, user=ES_USER, cwd=self.es_logs, timeout=self.deadline_seconds)

    def _get(self, path: str, timeout: float) -> dict | None:
        try:
            with urllib.request.urlopen(f"http://{self.address}{path}", timeout=timeout) as response:
                return json.load(response) if response.status == 200 else None
        except (OSError, ValueError, urllib.error.URLError):
            return None

    def healthy(self) -> bool:
        return self._get("/_cluster/health?wait_for_status=yellow&timeout=5s", timeout=10) is not None

    def detail(self) -> str:
        health = self._get("/_cluster/health", timeout=3)
        if health is None:
            return "not answering"
        return f"{ES_VERSION}, cluster {health.get('cluster_name')} {health.get('status')}"


def _clickhouse_status(settings: Settings) -> ServiceStatus:
    """ClickHouse runs inside the Prism processes (chDB) unless a server URL is configured."""
    if settings.uses_chdb:
        path = settings.chdb_path.absolute()
        return ServiceStatus("clickhouse", True, None, "embedded", f"embedded chDB at {path}")
    host, port = _host_port(settings.clickhouse_url, 8123)
    reachable = _port_open(host, port)
    detail = f"server {settings.clickhouse_url} ({'reachable' if reachable else 'not reachable'}, not managed here)"
    return ServiceStatus("clickhouse", reachable, None, f"{host}:{port}", detail)


# ---------------------------------------------------------------------------
# Life cycle of one service
# ---------------------------------------------------------------------------


def _services(settings: Settings) -> list[_Service]:
    """Start order: the write model first, then the read-side stores."""
    return [_Postgres(settings), _Redis(settings), _Elasticsearch(settings)]


def _await_health(service: _Service, deadline: float) -> None:
    """Wait for the health check; give up early if the process we started has died."""
    seen_pid = False

    def ready_or_dead() -> bool:
        nonlocal seen_pid
        pid = service.pid()
        seen_pid = seen_pid or pid is not None
        return service.healthy() or (seen_pid and pid is None)

    if _wait_until(ready_or_dead, deadline) and service.healthy():
        return
    reason = "exited" if seen_pid and service.pid() is None else "did not become healthy"
    raise ServiceError(
        f"{service.name} {reason} within {service.deadline_seconds:.0f}s on {service.address}\n"
        f"{_tail(service.log_files)}"
    )


def _start(service: _Service) -> None:
    """Install, prepare and launch a service that is not running, then wait until it answers."""
    service.install()
    service.prepare()
    service.clear_stale_pid()
    if _port_open(service.host, service.port):
        raise ServiceError(
            f"{service.name}: {service.address} is already taken by a process prism did not start; "
            "stop it or change the port in the settings"
        )
    _say(f"{service.name}: starting on {service.address} ... ", end="")
    started = time.monotonic()
    try:
        service.launch()
    except ServiceError as error:
        _say("failed")
        raise ServiceError(f"{service.name} failed to start, {error}\n{_tail(service.log_files)}") from error
    _await_health(service, started + service.deadline_seconds)
    _say(f"ready in {time.monotonic() - started:.1f}s")


def _up_one(service: _Service) -> None:
    """Start a service that is not running; restart one whose install changed; otherwise wait until it answers."""
    if not service.managed:
        _say(f"{service.name}: external at {service.address}, not managed here")
        return
    pid = service.pid()
    if pid is not None and service.outdated():
        _say(f"{service.name}: restarting to apply changes")
        _down_one(service)
        pid = None
    if pid is None:
        _start(service)
    elif service.healthy():
        _say(f"{service.name}: already running on {service.address} (pid {pid})")
    else:
        _say(f"{service.name}: running (pid {pid}) but not answering yet, waiting")
        _await_health(service, time.monotonic() + service.deadline_seconds)
    service.after_ready()


def _down_one(service: _Service) -> None:
    """Stop the service only if its pid file names a live process we started."""
    if not service.managed:
        return
    pid = service.pid()
    if pid is None:
        service.clear_stale_pid()
        _say(f"{service.name}: not running")
        return
    _say(f"{service.name}: stopping pid {pid} ... ", end="")
    started = time.monotonic()
    service.stop(pid)
    service.clear_stale_pid()
    _say(f"stopped in {time.monotonic() - started:.1f}s")


def _status_one(service: _Service) -> ServiceStatus:
    pid = service.pid()
    if pid is not None:
        detail = service.detail()
    elif _port_open(service.host, service.port):
        detail = "port taken by a process prism did not start" if service.managed else "external, not managed here"
    else:
        detail = "stopped"
    return ServiceStatus(service.name, pid is not None, pid, service.address, detail)


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def _layout(settings: Settings) -> Path:
    """Create services_dir with its shared logs/ and run/ folders (the per-service ones come later)."""
    if os.geteuid() != 0:
        raise ServiceError("starting and stopping the local services needs root (they run as their own users)")
    root = settings.services_dir.absolute()
    _make_dir(root)
    _make_dir(root / "logs")
    return _make_dir(root / "run")


def up(settings: Settings) -> None:
    """Start every local service that is not running yet and wait until each one answers."""
    run_dir = _layout(settings)
    with _exclusive(run_dir):
        for service in _services(settings):
            _up_one(service)


def down(settings: Settings) -> None:
    """Stop the services this module started, in reverse start order."""
    root = settings.services_dir.absolute()
    if not (root / "run").is_dir():
        _say("nothing to stop")
        return
    run_dir = _layout(settings)
    with _exclusive(run_dir):
        for service in reversed(_services(settings)):
            _down_one(service)


def stop_service(settings: Settings, name: str) -> None:
    """Stop one service this module started (fault drills; ``up`` starts it again)."""
    run_dir = _layout(settings)
    with _exclusive(run_dir):
        for service in _services(settings):
            if service.name == name:
                _down_one(service)


def status(settings: Settings) -> list[ServiceStatus]:
    """Report each service; ClickHouse is listed too although it has no process of its own."""
    return [*(_status_one(service) for service in _services(settings)), _clickhouse_status(settings)]


def _format_table(rows: list[ServiceStatus]) -> str:
    header = ("SERVICE", "STATE", "PID", "ADDRESS", "DETAIL")
    cells = [header] + [
        (r.name, "running" if r.running else "stopped", str(r.pid or "-"), r.address, r.detail) for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1] for row in cells
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m infra.services up|down|status``."""
    parser = argparse.ArgumentParser(prog="python -m infra.services", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("up", "down", "status"))
    args = parser.parse_args(argv)
    settings = Settings()
    try:
        if args.command == "up":
            up(settings)
        elif args.command == "down":
            down(settings)
        else:
            print(_format_table(status(settings)))
    except ServiceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

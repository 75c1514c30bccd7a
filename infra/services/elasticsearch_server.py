"""The single-node Elasticsearch Prism runs, from the Maven Central integ-test distribution.

Named so it never shadows the ``elasticsearch`` client library.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from infra.services.local_process import (
    ES_HOME,
    ES_USER,
    ES_VERSION,
    JAVA_HOME,
    OPT_DIR,
    SYSTEM_PATH,
    Service,
    ServiceError,
    check_writable,
    chown_tree,
    ensure_file,
    ensure_system_user,
    host_port,
    launch_daemon,
    make_dir,
    run,
    say,
)
from infra.services.plugins import PLUGINS, Plugin
from infra.settings import Settings

ES_ARTIFACT = f"org.elasticsearch.distribution.integ-test-zip:elasticsearch:{ES_VERSION}:zip"
MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
ES_CACHE_DIR = OPT_DIR / "cache"
#: Local services share a small machine with the tests; a larger heap only slows everything else.
ES_MAX_HEAP_BYTES = 1 << 30


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


class Elasticsearch(Service):
    """A real single-node Elasticsearch from the Maven Central integ-test distribution.

    That distribution carries only the core modules, which is all Prism's indexes need,
    and is far smaller than the default one. Its missing root endpoint comes from our own
    ``prism-root`` plugin and its missing token filters from ``prism-analysis`` (see plugins.Plugin).
    It runs as ``prism-es`` with Debian's JDK 17.
    """

    name = "elasticsearch"
    deadline_seconds = 300.0  # a JVM start on two busy cores has taken over two minutes

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, *host_port(settings.elasticsearch_url.split(",")[0], 9200))
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
        ensure_file(JAVA_HOME / "bin" / "java", "openjdk-17-jre-headless")
        if not (ES_HOME / "bin" / "elasticsearch").exists():
            self._unpack(self._download())
        for plugin in self._plugins():
            plugin.ensure()

    def _plugins(self) -> list[Plugin]:
        return [Plugin(self.name, name) for name in PLUGINS]

    def outdated(self) -> bool:
        """Plugins are read only when the node starts, so a new or changed one needs a restart."""
        # A list, not a generator: every plugin is checked (and rebuilt if its sources changed).
        return not all([plugin.current() for plugin in self._plugins()])  # noqa: C419

    def _download(self) -> Path:
        """Maven resolves the artifact through ~/.m2, so repeated installs cost nothing."""
        archive = ES_CACHE_DIR / f"elasticsearch-{ES_VERSION}.zip"
        if archive.exists():
            return archive
        ensure_file(Path("/usr/bin/mvn"), "maven")
        make_dir(ES_CACHE_DIR)
        say(f"{self.name}: fetching {ES_ARTIFACT}")
        run(
            [
                "mvn",
                "-q",
                f"{MAVEN_DEPENDENCY_PLUGIN}:copy",
                f"-Dartifact={ES_ARTIFACT}",
                f"-DoutputDirectory={ES_CACHE_DIR}",
            ],
            cwd=ES_CACHE_DIR,
            timeout=900,
        )
        return archive

    def _unpack(self, archive: Path) -> None:
        """Unpack next to the target and rename, so an interrupted unpack never looks installed.

        zipfile drops Unix permissions, so the modes stored in the archive are put back.
        """
        make_dir(OPT_DIR)
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
        ensure_system_user(ES_USER)
        shutil.rmtree(self.tmp, ignore_errors=True)
        for directory in (self.base, self.data, self.es_logs, self.tmp, self.run_dir):
            make_dir(directory, ES_USER, 0o750)
        chown_tree(ES_HOME / "config", ES_USER)
        check_writable(self.data, ES_USER)

    def _server_options(self) -> list[str]:
        return [arg for key, value in self._options().items() for arg in ("-E", f"{key}={value}")]

    def _options(self) -> dict[str, str]:
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
        return options

    def _environment(self) -> list[str]:
        """A clean environment: no stray JAVA_TOOL_OPTIONS or JAVA_HOME from the caller.

        The launcher JVM (CLI_JAVA_OPTS) gets the same temporary directory as the node,
        otherwise it leaves empty ``final-flags*`` folders in /tmp on every start.
        """
        return [
            "env",
            "-i",
            f"PATH={SYSTEM_PATH}",
            f"ES_JAVA_HOME={JAVA_HOME}",
            f"ES_JAVA_OPTS=-Xms{self.heap} -Xmx{self.heap}",
            f"ES_TMPDIR={self.tmp}",
            f"CLI_JAVA_OPTS=-Djava.io.tmpdir={self.tmp}",
            "LANG=C.UTF-8",
        ]

    def launch(self) -> None:
        """``-d`` returns once the node has started (or failed), with a pid file written by it.

        The working directory is the log directory because jvm.options writes gc.log
        and crash files relative to it.
        """
        command: list[str | Path] = [
            *self._environment(),
            ES_HOME / "bin" / "elasticsearch",
            "-d",
            "-p",
            self.pid_file,
            *self._server_options(),
        ]
        launch_daemon(command, self.log, user=ES_USER, cwd=self.es_logs, timeout=self.deadline_seconds)

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

"""Build and install Prism's own small Elasticsearch plugins from the Java sources in ``elasticsearch_plugins/``."""

from __future__ import annotations

import hashlib
import os
import shutil
import string
import tempfile
import zipfile
from pathlib import Path

from infra.services.local_process import (
    ES_HOME,
    ES_USER,
    ES_VERSION,
    JAVA_HOME,
    OPT_DIR,
    SYSTEM_PATH,
    chown_tree,
    ensure_file,
    ensure_system_user,
    make_dir,
    run,
    say,
)

JAVA_RELEASE = "17"
#: Our own small plugins, each built from its folder here, for what the integ-test distribution
#: lacks: prism-root serves ``GET /``, prism-analysis adds token filters (folding, lowercase, edge n-grams).
PLUGINS_SOURCE = Path(__file__).resolve().parent / "elasticsearch_plugins"
PLUGINS = ("prism-root", "prism-analysis")
BUILD_DIR = OPT_DIR / "build"


class Plugin:
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
        ensure_file(JAVA_HOME / "bin" / "javac", "openjdk-17-jdk-headless")
        say(f"{self.service}: building the {self.name} plugin")
        make_dir(BUILD_DIR)
        staging = Path(tempfile.mkdtemp(dir=BUILD_DIR, prefix=f".{self.name}-"))
        try:
            classes = staging / "classes"
            run(
                [
                    JAVA_HOME / "bin" / "javac",
                    "--release",
                    JAVA_RELEASE,
                    "-encoding",
                    "UTF-8",
                    "-cp",
                    f"{ES_HOME / 'lib'}/*",
                    "-d",
                    classes,
                    *self._sources(),
                ],
                timeout=300,
            )
            jar = staging / f"{self.name}-{ES_VERSION}.jar"
            run([JAVA_HOME / "bin" / "jar", "--create", "--file", jar, "-C", classes, "."], timeout=120)
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
        say(f"{self.service}: installing the {self.name} plugin")
        shutil.rmtree(self.installed, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(dir=BUILD_DIR, prefix=".plugin-tool-"))
        try:
            run(
                [
                    "env",
                    "-i",
                    f"PATH={SYSTEM_PATH}",
                    f"ES_JAVA_HOME={JAVA_HOME}",
                    f"CLI_JAVA_OPTS=-Djava.io.tmpdir={tmp}",
                    "LANG=C.UTF-8",
                    ES_HOME / "bin" / "elasticsearch-plugin",
                    "install",
                    "--batch",
                    self.bundle.as_uri(),
                ],
                cwd=ES_HOME,
                timeout=300,
            )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        ensure_system_user(ES_USER)
        chown_tree(self.installed, ES_USER)

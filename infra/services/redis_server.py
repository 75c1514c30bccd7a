"""Prism's own redis-server instance (named so it never shadows the ``redis`` client library)."""

from __future__ import annotations

from pathlib import Path

from infra.services.local_process import (
    Service,
    ensure_file,
    host_port,
    launch_daemon,
    make_dir,
    probe,
)
from infra.settings import Settings


class Redis(Service):
    """Our own redis-server instance, separate from any Debian one on 6379, without persistence."""

    name = "redis"
    deadline_seconds = 15.0

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, *host_port(settings.redis_url, 56379))
        self.data = self.root / "redis"

    @property
    def pid_file(self) -> Path:
        return self.root / "run" / "redis.pid"

    @property
    def process_token(self) -> str:
        return "redis-server"

    def install(self) -> None:
        ensure_file(Path("/usr/bin/redis-server"), "redis-server")

    def prepare(self) -> None:
        make_dir(self.data, mode=0o700)

    def options(self) -> list[str]:
        return [
            "--bind",
            self.host,
            "--port",
            str(self.port),
            "--daemonize",
            "yes",
            "--pidfile",
            str(self.pid_file),
            "--logfile",
            str(self.log),
            "--dir",
            str(self.data),
            "--save",
            "",
            "--appendonly",
            "no",
        ]

    def launch(self) -> None:
        launch_daemon(
            ["redis-server", *self.options()], self.log, user=None, cwd=self.data, timeout=self.deadline_seconds
        )

    def healthy(self) -> bool:
        result = probe(["redis-cli", "-h", self.host, "-p", str(self.port), "ping"])
        return result is not None and result.stdout.strip() == "PONG"

    def detail(self) -> str:
        return "PONG" if self.healthy() else "not answering"

"""The private Postgres 15 cluster Prism runs under ``services_dir/pg``."""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from urllib.parse import urlsplit

from infra.services.local_process import (
    STOP_TIMEOUT_SECONDS,
    Service,
    check_writable,
    ensure_file,
    host_port,
    launch_daemon,
    make_dir,
    own_file,
    probe,
    run,
)
from infra.settings import Settings

PG_VERSION = "15"
PG_BIN = Path(f"/usr/lib/postgresql/{PG_VERSION}/bin")
PG_USER = "postgres"
PG_MAX_CONNECTIONS = 300


class Postgres(Service):
    """A private Postgres 15 cluster under services_dir/pg, run by the ``postgres`` user.

    It uses initdb/pg_ctl directly rather than pg_createcluster so nothing lands in
    /etc/postgresql and Debian's ``main`` cluster is never involved.
    """

    name = "postgres"
    deadline_seconds = 60.0

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, *host_port(settings.write_database_url, 55432))
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
        ensure_file(PG_BIN / "initdb", "postgresql")

    def prepare(self) -> None:
        for directory in (self.base, self.socket_dir):
            make_dir(directory, PG_USER, 0o700)
        own_file(self.log, PG_USER)
        check_writable(self.base, PG_USER)
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
        self._write_config()

    def _initdb(self) -> None:
        """Local socket logins use peer auth (the postgres user); TCP logins need a password."""
        run(
            [
                PG_BIN / "initdb",
                "-D",
                self.data,
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
            ],
            user=PG_USER,
            cwd=self.base,
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\ninclude_if_exists = 'prism.conf'\n")

    def _write_config(self) -> None:
        """Rewritten before each start so a changed port in the settings takes effect."""
        conf = self.data / "prism.conf"
        conf.write_text(
            "# Written by infra/services/postgres.py on every start; edit the settings instead.\n"
            f"listen_addresses = '{self.host}'\n"
            f"port = {self.port}\n"
            f"max_connections = {PG_MAX_CONNECTIONS}\n"
            f"unix_socket_directories = '{self.socket_dir}'\n"
        )
        account = pwd.getpwnam(PG_USER)
        os.chown(conf, account.pw_uid, account.pw_gid)

    def launch(self) -> None:
        launch_daemon(
            [PG_BIN / "pg_ctl", "start", "-D", self.data, "-l", self.log, "-w", "-t", str(int(self.deadline_seconds))],
            self.log,
            user=PG_USER,
            cwd=self.base,
            timeout=self.deadline_seconds + 10,
        )

    def healthy(self) -> bool:
        result = probe([PG_BIN / "pg_isready", "-q", "-h", self.host, "-p", str(self.port), "-t", "2"])
        return result is not None and result.returncode == 0

    def after_ready(self) -> None:
        """Create the application roles and databases named in the settings, idempotently."""
        for url in (self.settings.write_database_url, self.settings.dashboards_database_url):
            parts = urlsplit(url)
            self._psql(
                _PROVISION_SQL,
                user=parts.username or "prism",
                password=parts.password or "prism",
                db=parts.path.lstrip("/"),
            )

    def _psql(self, script: str, **variables: str) -> None:
        """psql variables quote names and passwords, so odd characters cannot inject SQL."""
        assigns = [arg for key, value in variables.items() for arg in ("-v", f"{key}={value}")]
        run(
            [
                PG_BIN / "psql",
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                self.socket_dir,
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                "postgres",
                *assigns,
                "-f",
                "-",
            ],
            user=PG_USER,
            stdin=script,
            cwd=self.base,
        )

    def detail(self) -> str:
        state = "accepting connections" if self.healthy() else "not answering"
        return f"{state}; data {self.data}"

    def stop(self, pid: int) -> None:
        """Fast shutdown: a plain SIGTERM would wait for every client to disconnect."""
        run(
            [PG_BIN / "pg_ctl", "stop", "-D", self.data, "-m", "fast", "-w", "-t", str(int(STOP_TIMEOUT_SECONDS))],
            user=PG_USER,
            cwd=self.base,
            timeout=STOP_TIMEOUT_SECONDS + 10,
        )


_PROVISION_SQL = r"""
SELECT format('CREATE ROLE %I LOGIN CREATEDB PASSWORD %L', :'user', :'password')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user') \gexec
SELECT format('ALTER ROLE %I LOGIN CREATEDB PASSWORD %L', :'user', :'password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
"""

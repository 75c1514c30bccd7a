"""A streaming replica of Prism's Postgres, for ``prism services up --cluster``: the dashboards' readers read it
(``PRISM_DASHBOARDS_READ_URL``) while the projection writes the primary."""

from __future__ import annotations

import os
import pwd
import shutil

from infra.services.local_process import make_dir, probe, run
from infra.services.postgres import PG_BIN, PG_USER, Postgres
from infra.settings import POSTGRES_REPLICA_PORT, Settings


class PostgresReplica(Postgres):
    """A hot standby under ``services_dir/pg-replica``, copied from the primary with ``pg_basebackup`` at each start
    and streaming its WAL since (over the primary's local socket, as the ``postgres`` user)."""

    name = "postgres-replica"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.primary = Postgres(settings)
        self.port = POSTGRES_REPLICA_PORT
        self.log = self.root / "logs" / f"{self.name}.log"
        self.base = self.root / "pg-replica"
        self.data = self.base / "data"
        self.socket_dir = self.base / "socket"

    def prepare(self) -> None:
        """A fresh copy at every start (this runs only while the replica is down): it keeps no slot on the primary,
        so the WAL it would need to catch up after a stop may be gone."""
        for directory in (self.base, self.socket_dir):
            make_dir(directory, PG_USER, 0o700)
        shutil.rmtree(self.data, ignore_errors=True)
        self._copy_primary()
        super().prepare()

    def _copy_primary(self) -> None:
        # -R writes standby.signal and the primary's connection; -X stream carries the WAL written meanwhile.
        run(
            [
                PG_BIN / "pg_basebackup",
                "-h",
                self.primary.socket_dir,
                "-p",
                str(self.primary.port),
                "-U",
                "postgres",
                "-D",
                self.data,
                "-R",
                "-X",
                "stream",
                "--checkpoint=fast",
            ],
            user=PG_USER,
            cwd=self.base,
            timeout=300,
        )
        account = pwd.getpwnam(PG_USER)
        os.chown(self.data, account.pw_uid, account.pw_gid)

    def after_ready(self) -> None:
        """Nothing to provision: roles and databases come from the primary."""

    def replay_paused(self) -> bool:
        return self.sql("SELECT pg_is_wal_replay_paused()") == "t"

    def sql(self, statement: str) -> str:
        """One value of a statement run as ``postgres`` on the replica (pausing and resuming its replay)."""
        result = probe(
            [
                "runuser",
                "-u",
                PG_USER,
                "--",
                PG_BIN / "psql",
                "-X",
                "-qAt",
                "-h",
                self.socket_dir,
                "-p",
                str(self.port),
                "-d",
                "postgres",
                "-c",
                statement,
            ],
            timeout=10,
        )
        return result.stdout.strip() if result is not None and result.returncode == 0 else ""

    def detail(self) -> str:
        if not self.healthy():
            return "not answering"
        behind = self.sql("SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())")
        paused = ", replay paused" if self.replay_paused() else ""
        return f"streaming from {self.primary.address}, {behind or '?'} bytes not replayed{paused}; data {self.data}"

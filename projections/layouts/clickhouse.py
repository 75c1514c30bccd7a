"""One way to reach ClickHouse: a server over HTTP, or the embedded chDB engine on a local path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.exceptions import ProgrammingError


class EmbeddedEngineBusy(Exception):
    """Raised when another process holds the embedded engine's data path (chDB allows one process per path)."""


def connect(url: str, chdb_path: Path | str, settings: dict[str, Any] | None = None,
            database: str | None = None) -> Any:
    """A clickhouse-connect client; chDB when ``url`` is empty (one data path per process)."""
    extra = {"database": database} if database else {}
    if url:
        return clickhouse_connect.get_client(dsn=url, settings=settings or {}, **extra)
    Path(chdb_path).mkdir(parents=True, exist_ok=True)
    try:
        return clickhouse_connect.get_client(interface="chdb", path=str(chdb_path), settings=settings or {}, **extra)
    except ProgrammingError as error:
        raise EmbeddedEngineBusy(
            f"the embedded ClickHouse engine at {chdb_path} is in use by another process (a running `prism serve`?). "
            "Ask that process over HTTP (GET /projections, POST /audit, /deadletters), stop it first, or set "
            f"PRISM_CLICKHOUSE_URL to a ClickHouse server. ({error})") from error
